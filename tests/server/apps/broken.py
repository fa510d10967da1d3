"""Broken app"""
raise ZeroDivisionError("the app divided by zero")
