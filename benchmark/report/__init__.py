"""The comparison report: published numbers beside reproduced ones (Markdown, HTML, plots)."""
