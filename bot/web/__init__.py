"""The phone dashboard's page, script and styles (package data), and its pure view model."""
