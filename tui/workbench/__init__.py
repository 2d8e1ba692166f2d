"""The authoring workbench (`pathways tui`): a Textual terminal UI.

Every module that imports textual is named ``workbench_*`` (tests/test_layers.py
allows textual only there). The pure logic the panels share, and that the
benchmark times without a terminal, lives in ``workbench_lang`` (the editor's
language services), ``workbench_data`` (datasets, stratification, what-if)
and ``workbench_diagram`` (pathway drawings); none of those imports textual.
"""
