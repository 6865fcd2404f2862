"""The admin dashboard: server-rendered pages for staff over the same commands and roles as the API."""
