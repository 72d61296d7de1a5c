"""Email adapters: the Liquid templates of the ``emails`` section, parsed, checked and rendered."""
