"""Business logic, one module per resource. Services own the transaction: routes never commit."""
