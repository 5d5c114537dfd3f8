"""One line of an exception for an error message, whatever the exception holds."""

from __future__ import annotations

from gfmcli.errors import first_line, unexpected_error


def test_first_line_of_a_message_an_empty_one_and_a_wrapped_gdal_one():
    assert first_line(ValueError("bad block\nat offset 12")) == "bad block"
    assert first_line(OSError()) == "OSError"  # ''.splitlines()[0] once raised IndexError here
    assert first_line(OSError(), "refused") == "refused"
    gdal = RuntimeError("TIFFReadEncodedTile() failed.")
    wrapper = RuntimeError("Read or write failed. See previous exception for details.")
    wrapper.__cause__ = gdal
    assert first_line(wrapper) == "TIFFReadEncodedTile() failed."


def test_an_unexpected_error_without_a_message_still_names_its_type():
    error = unexpected_error(OSError(), "scene.tif")
    assert str(error).startswith("scene.tif: unexpected error (OSError); rerun with --debug")
