"""lictrt layers: selective scan (``scan``), SS2D (``ss2d``), VSS blocks (``vss``), RMSNorm (``norm``),
patch merging/splitting (``patch``) and windowed attention (``swin``). GDN is ``compressai.layers.GDN``."""
