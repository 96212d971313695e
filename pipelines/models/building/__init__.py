"""Builders of the tiny and full-size random models, saved in the Hub's layouts."""
