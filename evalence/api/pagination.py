from rest_framework.pagination import PageNumberPagination


class Pagination(PageNumberPagination):
    """`?page=` and `?page_size=` (up to 1000), answering `{"count", "next", "previous", "results"}`."""

    page_size_query_param = "page_size"
    max_page_size = 1000
