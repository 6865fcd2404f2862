"""The payment service provider: GoPay's port to it, the HTTP adapter, webhook signatures, the simulator."""
