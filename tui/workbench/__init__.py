"""The authoring workbench (`pathways tui`): a Textual terminal UI.

Only the modules of this package may import textual (tests/test_layers.py
allows it nowhere else, and checks that the command line never loads it).
The pure logic the panels share, and that the benchmark times without a
terminal, lives in ``workbench_lang`` (the editor's language services),
``workbench_data`` (datasets, stratification, what-if) and
``workbench_diagram`` (pathway drawings); none of those imports textual.
"""
