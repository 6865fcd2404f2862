"""Passwords, tokens and the other secrets GoPay keeps."""
