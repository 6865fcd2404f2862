"""`gopay psp-sim`: a Stripe-like PSP over HTTP with durable books and injectable faults."""
