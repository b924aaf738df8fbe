"""Experiments: commands that run several stages (`mint quickstart`, `mint sweep`, `mint study`)."""
