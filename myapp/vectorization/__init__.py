"""Image vectorization: loading images, embedding them with Azure AI, finding similar photos."""
