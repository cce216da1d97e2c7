"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-29 06:02:00.924119
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import myapp.data.types

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("sku", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("stock_on_hand", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "created_at",
            myapp.data.types.UtcDateTime(),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            myapp.data.types.UtcDateTime(),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("deleted_at", myapp.data.types.UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
        sa.UniqueConstraint("sku", name=op.f("uq_products_sku")),
    )
    op.create_table(
        "suppliers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("website_url", sa.String(), nullable=True),
        sa.Column("contact_info", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            myapp.data.types.UtcDateTime(),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            myapp.data.types.UtcDateTime(),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("deleted_at", myapp.data.types.UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppliers")),
        sa.UniqueConstraint("name", name=op.f("uq_suppliers_name")),
    )
    op.create_table(
        "product_photos",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=True),
        sa.Column("url", sa.String(), nullable=False),
        sa.Column("caption", sa.Text(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "Queued",
                "Started",
                "Completed",
                "Failed",
                "Cancelled",
                name="processingstatus",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("embedding", myapp.data.types.Float32Vector(), nullable=True),
        sa.Column("embedding_model", sa.String(length=200), nullable=True),
        sa.Column("embedding_dimensions", sa.Integer(), nullable=True),
        sa.Column("vectorized_at", myapp.data.types.UtcDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("max_attempts", sa.Integer(), server_default="5", nullable=False),
        sa.Column("next_attempt_at", myapp.data.types.UtcDateTime(), nullable=True),
        sa.Column("locked_by", sa.String(length=200), nullable=True),
        sa.Column("locked_until", myapp.data.types.UtcDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            myapp.data.types.UtcDateTime(),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            myapp.data.types.UtcDateTime(),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("deleted_at", myapp.data.types.UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_product_photos_product_id"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_photos")),
    )
    with op.batch_alter_table("product_photos", schema=None) as batch_op:
        batch_op.create_index(
            "ix_product_photos_claimable",
            ["created_at", "id"],
            unique=False,
            postgresql_where=sa.text("status IN ('Queued', 'Started') AND deleted_at IS NULL"),
            sqlite_where=sa.text("status IN ('Queued', 'Started') AND deleted_at IS NULL"),
        )
        batch_op.create_index(
            batch_op.f("ix_product_photos_product_id"), ["product_id"], unique=False
        )

    op.create_table(
        "staging_batches",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("batch_processor_name", sa.String(length=100), nullable=False),
        sa.Column("supplier_id", sa.Uuid(), nullable=True),
        sa.Column("started_at", myapp.data.types.UtcDateTime(), nullable=True),
        sa.Column("completed_at", myapp.data.types.UtcDateTime(), nullable=True),
        sa.Column("file_hash", sa.String(length=128), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "Queued",
                "Started",
                "Completed",
                "Failed",
                "Cancelled",
                name="processingstatus",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("file_contents", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("max_attempts", sa.Integer(), server_default="5", nullable=False),
        sa.Column("next_attempt_at", myapp.data.types.UtcDateTime(), nullable=True),
        sa.Column("locked_by", sa.String(length=200), nullable=True),
        sa.Column("locked_until", myapp.data.types.UtcDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            myapp.data.types.UtcDateTime(),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            myapp.data.types.UtcDateTime(),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("deleted_at", myapp.data.types.UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["supplier_id"],
            ["suppliers.id"],
            name=op.f("fk_staging_batches_supplier_id"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staging_batches")),
        sa.UniqueConstraint(
            "batch_processor_name",
            "file_hash",
            name=op.f("uq_staging_batches_batch_processor_name_file_hash"),
        ),
    )
    with op.batch_alter_table("staging_batches", schema=None) as batch_op:
        batch_op.create_index(
            "ix_staging_batches_claimable",
            ["batch_processor_name", "started_at", "id"],
            unique=False,
            postgresql_where=sa.text("status IN ('Queued', 'Started') AND deleted_at IS NULL"),
            sqlite_where=sa.text("status IN ('Queued', 'Started') AND deleted_at IS NULL"),
        )
        batch_op.create_index(
            batch_op.f("ix_staging_batches_supplier_id"), ["supplier_id"], unique=False
        )

    op.create_table(
        "staging_purchase_orders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("supplier_reference", sa.String(length=200), nullable=False),
        sa.Column("order_date", myapp.data.types.UtcDateTime(), nullable=True),
        sa.Column("raw_data", sa.Text(), nullable=True),
        sa.Column("is_imported", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "Queued",
                "Started",
                "Completed",
                "Failed",
                "Cancelled",
                name="processingstatus",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            myapp.data.types.UtcDateTime(),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            myapp.data.types.UtcDateTime(),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("deleted_at", myapp.data.types.UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["staging_batches.id"],
            name=op.f("fk_staging_purchase_orders_batch_id"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staging_purchase_orders")),
        sa.UniqueConstraint(
            "batch_id",
            "supplier_reference",
            name=op.f("uq_staging_purchase_orders_batch_id_supplier_reference"),
        ),
    )
    op.create_table(
        "staging_purchase_order_items",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("supplier_reference", sa.String(length=200), nullable=True),
        sa.Column("supplier_product_url", sa.String(), nullable=True),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("quantity", sa.Integer(), server_default="1", nullable=False),
        sa.Column("listed_unit_price", myapp.data.types.ExactDecimal(), nullable=True),
        sa.Column("actual_unit_price", myapp.data.types.ExactDecimal(), nullable=True),
        sa.Column("raw_data", sa.Text(), nullable=True),
        sa.Column("is_imported", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "Pending",
                "Approved",
                "Rejected",
                "Imported",
                name="candidatestatus",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            myapp.data.types.UtcDateTime(),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            myapp.data.types.UtcDateTime(),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("deleted_at", myapp.data.types.UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["staging_purchase_orders.id"],
            name=op.f("fk_staging_purchase_order_items_order_id"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staging_purchase_order_items")),
    )
    with op.batch_alter_table("staging_purchase_order_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_staging_purchase_order_items_order_id"), ["order_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("staging_purchase_order_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staging_purchase_order_items_order_id"))

    op.drop_table("staging_purchase_order_items")
    op.drop_table("staging_purchase_orders")
    with op.batch_alter_table("staging_batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staging_batches_supplier_id"))
        batch_op.drop_index(
            "ix_staging_batches_claimable",
            postgresql_where=sa.text("status IN ('Queued', 'Started') AND deleted_at IS NULL"),
            sqlite_where=sa.text("status IN ('Queued', 'Started') AND deleted_at IS NULL"),
        )

    op.drop_table("staging_batches")
    with op.batch_alter_table("product_photos", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_product_photos_product_id"))
        batch_op.drop_index(
            "ix_product_photos_claimable",
            postgresql_where=sa.text("status IN ('Queued', 'Started') AND deleted_at IS NULL"),
            sqlite_where=sa.text("status IN ('Queued', 'Started') AND deleted_at IS NULL"),
        )

    op.drop_table("product_photos")
    op.drop_table("suppliers")
    op.drop_table("products")
