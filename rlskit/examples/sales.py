"""Example: a "sales analytics" data product (orders and customers), with analysts who see
only EU rows (and a revenue-by-region output port), engineers who read and write
everything, and an owner who decides who holds the analyst and engineer roles.
`build_model("dev_")` and `build_model("prod_")` are the same product in two environments
of one cluster."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Identity, Integer, MetaData, Numeric, String, Table

from rlskit import Claim, Model

metadata = MetaData()
customers = Table(
    "customers", metadata,
    Column("id", Integer, Identity(), primary_key=True),  # identity: INSERT is enough
    Column("name", String, nullable=False),
    Column("region", String, nullable=False, index=True),
    schema="sales",
)
orders = Table(
    "orders", metadata,
    Column("id", Integer, Identity(), primary_key=True),
    Column("customer_id", Integer, ForeignKey("sales.customers.id"), nullable=False),
    Column("region", String, nullable=False, index=True),
    Column("amount", Numeric(12, 2), nullable=False),
    schema="sales",
)


def build_model(environment: str = "dev_") -> Model:
    """The data product with the environment's role prefix (``dev_``, ``prod_``)."""
    model = Model(schema="sales", role_prefix=environment)
    model.context(user_id=Claim("sub", type="text", required=False),
                  groups=Claim("groups", type="text[]", required=False),
                  department=Claim("department", type="text", required=False),
                  region=Claim("region", type="text", required=False))
    product = model.data_product("sales_analytics", tables=[orders, customers])
    for table in (orders, customers):
        product.row_filter(product.analyst, table, "region = 'EU'")
    product.output_port("revenue_by_region", to=["analyst", "owner"], query=(
        "SELECT region, count(*) AS orders, sum(amount) AS revenue "
        "FROM sales.orders GROUP BY region"))
    product.analyst.limits = (("statement_timeout", "2s"),)
    model.authenticator("analytics_gateway")
    return model


model = build_model()
