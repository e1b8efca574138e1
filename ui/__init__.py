"""Streamlit glue shared by the pages: state keys, page registry, sidebar, query-string cleaning."""
