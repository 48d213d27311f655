"""Codes of issuing states and nationalities an MRZ may carry (ICAO Doc 9303 part 3).

ICAO writes a state, an organisation or a status as three letters, ``<``-filled where shorter:
the ISO 3166-1 alpha-3 codes, ``D<<`` for Germany, and ICAO's own codes (British nationals of
other kinds, the United Nations and its agencies, other international organisations, stateless
persons and refugees, an unspecified nationality, and ``UTO``, the specimen state Utopia).

No check digit covers a code, so the reader cannot tell a misread letter there from the print
(a ``D<<`` read ``O<<``); a code not in :data:`STATE_CODES` makes a reading uncertain
(:mod:`fieldid.documents.read`). A code missing here only costs a reading its ``valid``, never
its fields.
"""

from __future__ import annotations

_ISO = """
    ABW AFG AGO AIA ALA ALB AND ARE ARG ARM ASM ATA ATF ATG AUS AUT
    AZE BDI BEL BEN BES BFA BGD BGR BHR BHS BIH BLM BLR BLZ BMU BOL
    BRA BRB BRN BTN BVT BWA CAF CAN CCK CHE CHL CHN CIV CMR COD COG
    COK COL COM CPV CRI CUB CUW CXR CYM CYP CZE DJI DMA DNK DOM DZA
    ECU EGY ERI ESH ESP EST ETH FIN FJI FLK FRA FRO FSM GAB GBR GEO
    GGY GHA GIB GIN GLP GMB GNB GNQ GRC GRD GRL GTM GUF GUM GUY HKG
    HMD HND HRV HTI HUN IDN IMN IND IOT IRL IRN IRQ ISL ISR ITA JAM
    JEY JOR JPN KAZ KEN KGZ KHM KIR KNA KOR KWT LAO LBN LBR LBY LCA
    LIE LKA LSO LTU LUX LVA MAC MAF MAR MCO MDA MDG MDV MEX MHL MKD
    MLI MLT MMR MNE MNG MNP MOZ MRT MSR MTQ MUS MWI MYS MYT NAM NCL
    NER NFK NGA NIC NIU NLD NOR NPL NRU NZL OMN PAK PAN PCN PER PHL
    PLW PNG POL PRI PRK PRT PRY PSE PYF QAT REU ROU RUS RWA SAU SDN
    SEN SGP SGS SHN SJM SLB SLE SLV SMR SOM SPM SRB SSD STP SUR SVK
    SVN SWE SWZ SXM SYC SYR TCA TCD TGO THA TJK TKL TKM TLS TON TTO
    TUN TUR TUV TWN TZA UGA UKR UMI URY USA UZB VAT VCT VEN VGB VIR
    VNM VUT WLF WSM YEM ZAF ZMB ZWE
    ANT NTZ
"""
_ICAO = """
    D<< GBD GBN GBO GBP GBS UNO UNA UNK RKS EUE
    XBA XCC XCE XCO XDC XEC XES XIM XMP XOM XPO
    XXA XXB XXC XXX UTO
"""
#: ISO 3166-1 alpha-3 (with ``ANT`` and ``NTZ``, withdrawn, that documents may still carry).
ISO_ALPHA3 = frozenset(_ISO.split())
#: ICAO's codes beyond ISO 3166 (Doc 9303 part 3), ``<``-filled: ``D<<`` Germany; ``GBD``,
#: ``GBN``, ``GBO``, ``GBP``, ``GBS`` British nationals of other kinds; ``UNO``, ``UNA``, ``UNK``
#: the United Nations, its agencies, its mission in Kosovo; ``RKS`` Kosovo; ``EUE`` the European
#: Union; ``XBA`` to ``XPO`` other international organisations; ``XXA`` stateless, ``XXB`` and
#: ``XXC`` refugees, ``XXX`` unspecified; ``UTO`` Utopia, ICAO's specimen state.
ICAO_ONLY = frozenset(_ICAO.split())
#: Every code a nationality or issuing state may read.
STATE_CODES = ISO_ALPHA3 | ICAO_ONLY


def is_state_code(code: str) -> bool:
    """Whether ``code`` (three characters as printed, ``<``-filled) names a state or an entity
    ICAO gives a code."""
    return code in STATE_CODES
