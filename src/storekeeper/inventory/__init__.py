"""Stock: locations, levels, the movement ledger, holds and allocations."""
