"""Fact finding post 5: do early layers specialise in local processing?"""
