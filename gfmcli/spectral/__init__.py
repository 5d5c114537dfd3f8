"""Which band is which: the one rulebook for band names, wavelengths and sensor tells.

``predict``/``embed`` (:mod:`gfmcli.io.bands`), ``tile`` (:mod:`gfmcli.train.bands`) and STAC
readers all decide a file band's identity here, so a band means the same thing everywhere.
Nothing here reads pixels; :class:`FileFacts` is what a file says about itself (descriptions,
tags, band tags, data types, pixel size). The rules, also in docs/formats.md:

1. **A label** (band description, ``--bands`` name, STAC ``eo:bands`` name) is, first match wins:
   a band name or alias of the sensor (``B04``, ``B8A``, ``SR_B4``, ``red``, ``nir08``,
   ``rededge1``); a wavelength written with its unit (``"418.24 nm"``, ``"0.665 um"``,
   ``"band 4 (665nm)"``), which *is* that wavelength; a STAC ``eo`` common name without a sensor
   (``swir16`` -> the middle of its range). Band tags ``wavelength`` (+ ``wavelength_units``,
   nm when absent or > 100, um below) or ``center_wavelength`` say the same as a description.
2. **The sensor**, when ``--sensor`` does not name it, from all the file's tells:
   * tags naming a platform/instrument (``SENSOR``, ``SPACECRAFT_NAME``, ``PLATFORM``…:
     "Sentinel-2A MSI", "LANDSAT_8", "Landsat 7 ETM+", "EnMAP HSI");
   * the band labels (``B8A``, zero-padded ``B01``… and ``B12`` only exist on Sentinel-2;
     ``SR_B6`` only on OLI; bare ``B1``…``B7`` fit Sentinel-2 *and* every Landsat);
   * the pixel size (at most 25 m: not Landsat; at least 25 m: not Sentinel-2's 10 m stack),
     used only when tags do not decide.
   Exactly one family left: that one. Labels that fit several (bare band numbers) without a
   decisive tell: an error listing the ``--sensor`` choices. Sensor-neutral labels (common names,
   wavelengths) without tells: the model's own sensor when its bands fit one to one, else no
   sensor (bare wavelengths).
3. **The product within a family**: Sentinel-2 ``B10`` or a level tag ``L1C`` -> L1C, ``L2A`` ->
   L2A, else the model's product; Landsat by data type, the way USGS ships them: ``uint16`` ->
   Collection 2 Level-2, ``int16`` -> Collection 1 SR x 10000, ``uint8`` -> Level-1 DN, float ->
   already reflectance.
4. **Bands not used**: band tag ``bbl=0`` or a dataset tag ``BAD_BANDS`` listing it (bad bands of
   imaging spectrometers); they are reported, not mapped.

Where several file bands carry wavelengths close to one sensor band (a spectrometer read against
Sentinel-2's table), the wavelengths stand for themselves: a wavelength is matched to a sensor
band (within ``WAVELENGTH_MATCH_NM``) only when every band finds a different one.
"""
