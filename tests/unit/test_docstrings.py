"""A handler's docstring read into its summary and each argument's text, in the three styles projects write."""

from __future__ import annotations

from taskservice.core.handlers.docstrings import read_docstring


def google(ctx, width, height=480, *, mode="fit"):  # type: ignore[no-untyped-def]
    """Resize an image
    to the size asked.

    The aspect ratio is kept.

    Args:
        width (int): Width in pixels,
            at least 1.
        height: Height in pixels.
        mode: How to fit: "fit" or "fill".

    Returns:
        The output's size.
    """


def rest(ctx, source, level=6):  # type: ignore[no-untyped-def]
    """Compress a file.

    :param source: The file to compress,
        under the data root.
    :param int level: gzip's level, 1 to 9.
    :returns: the compressed size
    """


def numpy(ctx, seconds, label=""):  # type: ignore[no-untyped-def]
    """Wait a while.

    Parameters
    ----------
    seconds : float
        How long to wait,
        in seconds.
    label : str, optional
        Shown in the log.

    Returns
    -------
    dict
        What was waited.
    """


def bare(ctx, x):  # type: ignore[no-untyped-def]
    """Only a summary: x is not described."""


def nothing(ctx, x):  # type: ignore[no-untyped-def]
    pass


def test_google_style_summary_and_args_with_continuations() -> None:
    docs = read_docstring(google)
    assert docs.summary == "Resize an image to the size asked."
    assert docs.args == {
        "width": "Width in pixels, at least 1.",
        "height": "Height in pixels.",
        "mode": 'How to fit: "fit" or "fill".',
    }


def test_rest_style_params_with_types_and_continuations() -> None:
    docs = read_docstring(rest)
    assert docs.summary == "Compress a file."
    assert docs.args == {"source": "The file to compress, under the data root.", "level": "gzip's level, 1 to 9."}


def test_numpy_style_parameters_stop_at_the_next_section() -> None:
    docs = read_docstring(numpy)
    assert docs.summary == "Wait a while."
    assert docs.args == {"seconds": "How long to wait, in seconds.", "label": "Shown in the log."}


def test_a_summary_alone_and_no_docstring() -> None:
    assert read_docstring(bare).summary == "Only a summary: x is not described."
    assert read_docstring(bare).args == {}
    assert read_docstring(nothing).summary == "" and read_docstring(nothing).args == {}


def test_a_docstring_that_starts_with_its_args_has_no_summary() -> None:
    def handler(ctx, n):  # type: ignore[no-untyped-def]
        """Args:
        n: how many.
        """

    # getdoc leaves the first line unindented and the rest dedented: the item sits at the heading's indent.
    docs = read_docstring(handler)
    assert docs.summary == ""
