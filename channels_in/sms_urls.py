"""(being built)"""
urlpatterns: list = []
