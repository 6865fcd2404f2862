"""Mobile operators, as GoPay reaches them: the port and its HTTP adapter."""
