"""The catalog: category tree, products and SKUs."""
