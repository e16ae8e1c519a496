"""Customer emails, made from published `order.*` and `stock.back_in_stock` events and sent
through SMTP, and the waitlist of customers waiting for a SKU to be back in stock."""
