"""Azure Blob Storage access: listing, downloading and deleting blobs."""
