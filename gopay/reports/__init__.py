"""Documents GoPay hands its customers from the read side: monthly statements, merchants' sales reports."""
