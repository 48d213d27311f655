"""Chip data (eMRTD, ICAO Doc 9303 parts 10 and 11): data groups and passive authentication.

Input: the files a phone's NFC reader app exports after reading the chip with the MRZ as key:
``EF.SOD`` (the document security object), ``DG1`` (the MRZ) and, usually, ``DG2`` (the face).
:func:`load_chip_dir` reads them from a folder, :func:`chip_from_base64` from base64 strings.

Passive authentication (:func:`verify_chip`), in order; each failure is a reason with a stable
code, and every applicable check runs so that all reasons are reported at once:

===================================  ==========================================================
code                                 meaning
===================================  ==========================================================
``chip.sod_unreadable``              EF.SOD is not a CMS SignedData holding an LDS security
                                     object (nothing else can be checked)
``chip.no_signer_certificate``       the SOD carries no document signer certificate matching
                                     its signer
``chip.signature_invalid``           the SOD's signature (or its signed message digest) does
                                     not verify with the document signer's key
``chip.signer_expired``              the document signer certificate is outside its validity
``chip.signer_not_yet_valid``        period at the time of the check
``chip.csca_unknown``                no certificate in the CSCA folder issued the document
                                     signer certificate (name and signature)
``chip.csca_expired``                the issuing CSCA certificate is outside its validity
``chip.no_csca_folder``              the CSCA folder is missing or holds no certificate
``chip.dg_hash_mismatch``            a data group's hash differs from the one the SOD signs
``chip.dg_not_in_sod``               a data group was given that the SOD does not list
``chip.dg1_missing``                 no DG1 was given (the MRZ is what the chip proves)
``chip.dg1_unreadable``              DG1 holds no MRZ of a known format
===================================  ==========================================================

``verified`` holds only when there is no reason at all. The DG1 MRZ is parsed with the same
parser as an MRZ read by OCR (its check digits reported too); DG2's first face image (JPEG or
JPEG 2000, inside its ISO/IEC 19794-5 record) is extracted and decoded with Pillow.

ASN.1 is parsed and built with asn1crypto only (``cms`` for the SignedData, declared
``Sequence`` types for the LDS security object, ``parser`` for the data groups' BER-TLV), and
signatures are checked with ``cryptography``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from asn1crypto import cms, core, parser
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from numpy.typing import NDArray

from fieldid.clock import Clock, SystemClock
from fieldid.documents.mrz import MrzFormatError, MrzReading, parse_mrz
from fieldid.errors import FieldidError

LDS_SECURITY_OBJECT = "2.23.136.1.1.1"
#: Tags of the data group files (ICAO 9303-10): DG1 0x61, DG2 0x75, SOD 0x77.
DG_TAGS = {1: 0x61, 2: 0x75, 3: 0x63, 11: 0x6B, 12: 0x6C, 14: 0x6E, 15: 0x6F}
SOD_TAG = 0x77


class ChipError(FieldidError):
    """Chip files that cannot be taken in at all. Codes start with ``chip.``."""

    code = "chip.unreadable"


class DataGroupHash(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[list[Any]] = [
        ("data_group_number", core.Integer),
        ("data_group_hash_value", core.OctetString),
    ]


class DataGroupHashValues(core.SequenceOf):  # type: ignore[misc]
    _child_spec = DataGroupHash


class LDSVersionInfo(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[list[Any]] = [
        ("lds_version", core.PrintableString),
        ("unicode_version", core.PrintableString),
    ]


class LDSSecurityObject(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[list[Any]] = [
        ("version", core.Integer),
        ("hash_algorithm", cms.DigestAlgorithm),
        ("data_group_hash_values", DataGroupHashValues),
        ("lds_version_info", LDSVersionInfo, {"optional": True}),
    ]


@dataclass(frozen=True)
class ChipFiles:
    """The raw files: data group number → bytes, and the SOD."""

    sod: bytes
    data_groups: dict[int, bytes]


@dataclass(frozen=True)
class Reason:
    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass
class ChipVerification:
    """Passive authentication's outcome and what the chip says."""

    reasons: list[Reason]
    checked_at: datetime
    hash_algorithm: str | None = None
    data_group_hashes: dict[int, str] = field(default_factory=dict)  # number → valid/invalid
    signer_subject: str | None = None
    csca_subject: str | None = None
    mrz: MrzReading | None = None
    face_image: bytes | None = None
    face_format: str | None = None  # jpeg / jpeg2000
    face_rgb: NDArray[np.uint8] | None = None

    @property
    def verified(self) -> bool:
        return not self.reasons

    @property
    def codes(self) -> list[str]:
        return [r.code for r in self.reasons]

    def to_dict(self) -> dict[str, Any]:
        return {
            "verified": self.verified,
            "reasons": [r.to_dict() for r in self.reasons],
            "checked_at": self.checked_at.isoformat(),
            "hash_algorithm": self.hash_algorithm,
            "data_groups": {f"DG{k}": v for k, v in sorted(self.data_group_hashes.items())},
            "document_signer": self.signer_subject,
            "csca": self.csca_subject,
            "mrz_lines": None if self.mrz is None else self.mrz.lines,
            "fields": None if self.mrz is None else dict(self.mrz.fields),
            "mrz_checks": None
            if self.mrz is None
            else {c.name: c.to_dict() for c in self.mrz.checks},
            "face_image": None
            if self.face_image is None
            else {"format": self.face_format, "bytes": len(self.face_image)},
        }


# --- taking the files in ---------------------------------------------------------------------


def _dg_number(stem: str) -> int | None:
    s = stem.upper().replace("EF_", "").replace("EF.", "")
    if s.startswith("DG") and s[2:].isdigit():
        return int(s[2:])
    return None


def load_chip_dir(folder: Path) -> ChipFiles:
    """``EF_SOD.bin``/``SOD.bin`` and ``DG1.bin``/``EF_DG1.bin``… from a folder (any extension)."""
    if not folder.is_dir():
        raise ChipError(f"{folder} is not a folder of chip files", code="chip.not_a_folder")
    sod: bytes | None = None
    dgs: dict[int, bytes] = {}
    for p in sorted(folder.iterdir()):
        if not p.is_file():
            continue
        stem = p.name.split(".")[0] if not p.name.upper().startswith("EF.") else p.name[3:]
        stem = stem.split(".")[0]
        if stem.upper() in ("EF_SOD", "SOD"):
            sod = p.read_bytes()
        elif (n := _dg_number(stem)) is not None:
            dgs[n] = p.read_bytes()
    if sod is None:
        raise ChipError(f"no EF_SOD / SOD file in {folder}", code="chip.no_sod")
    return ChipFiles(sod, dgs)


def chip_from_base64(sod: str, data_groups: dict[int, str]) -> ChipFiles:
    """The same files given as base64 (as an API request carries them)."""
    try:
        return ChipFiles(
            base64.b64decode(sod, validate=True),
            {int(k): base64.b64decode(v, validate=True) for k, v in data_groups.items()},
        )
    except (binascii.Error, ValueError) as e:
        raise ChipError(f"chip data is not valid base64: {e}", code="chip.bad_base64") from e


def load_csca_folder(folder: Path) -> list[x509.Certificate]:
    """Every certificate (PEM or DER; .pem .crt .cer .der) in the CSCA folder."""
    out: list[x509.Certificate] = []
    if not folder.is_dir():
        return out
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in (".pem", ".crt", ".cer", ".der") or not p.is_file():
            continue
        data = p.read_bytes()
        try:
            if b"-----BEGIN CERTIFICATE-----" in data:
                out.extend(x509.load_pem_x509_certificates(data))
            else:
                out.append(x509.load_der_x509_certificate(data))
        except ValueError:
            continue
    return out


# --- data groups -------------------------------------------------------------------------------


def _tlv(data: bytes) -> tuple[int, int, int, bytes]:
    """(class, method, tag, contents) of the first BER-TLV in ``data`` (asn1crypto's parser)."""
    class_, method, tag, _header, contents, _trailer = parser.parse(data, strict=False)
    return class_, method, tag, contents


def _children(data: bytes) -> list[tuple[int, int, int, bytes]]:
    out = []
    pos = 0
    while pos < len(data):
        class_, method, tag, header, contents, trailer = parser.parse(data[pos:], strict=False)
        out.append((class_, method, tag, contents))
        pos += len(header) + len(contents) + len(trailer)
    return out


def dg1_mrz_lines(dg1: bytes) -> list[str]:
    """The MRZ in DG1 (tag 0x61 → 0x5F1F), split into its lines by the format's length."""
    _, _, tag, contents = _tlv(dg1)
    if tag != 1:
        raise ChipError("DG1 does not start with tag 0x61", code="chip.dg1_unreadable")
    for class_, _, t, value in _children(contents):
        if class_ == 1 and t == 31:
            text = value.decode("ascii", "replace")
            n = {90: 30, 72: 36, 88: 44}.get(len(text))
            if n is None:
                raise ChipError(f"DG1 MRZ has {len(text)} characters", code="chip.dg1_unreadable")
            return [text[i : i + n] for i in range(0, len(text), n)]
    raise ChipError("DG1 holds no MRZ (tag 0x5F1F)", code="chip.dg1_unreadable")


def _find_image(block: bytes) -> tuple[bytes, str] | None:
    """The face image inside an ISO/IEC 19794-5 record, by its file signature."""
    for sig, fmt in (
        (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "jpeg2000"),
        (b"\xff\x4f\xff\x51", "jpeg2000"),
        (b"\xff\xd8\xff", "jpeg"),
    ):
        i = block.find(sig)
        if i >= 0:
            return block[i:], fmt
    return None


def dg2_face(dg2: bytes) -> tuple[bytes, str] | None:
    """The first face image in DG2 (0x75 → 0x7F61 → 0x7F60 → 0x5F2E/0x7F2E), with its format."""
    _, _, tag, contents = _tlv(dg2)
    if tag != 21:
        return None
    stack = [contents]
    while stack:
        for class_, method, t, value in _children(stack.pop(0)):
            if class_ == 1 and t == 46:  # 5F2E / 7F2E: biometric data block
                return _find_image(value)
            if method == 1:
                stack.append(value)
    return None


def decode_face(image: bytes) -> NDArray[np.uint8]:
    from PIL import Image

    with Image.open(io.BytesIO(image)) as im:
        return np.array(im.convert("RGB"))


# --- passive authentication --------------------------------------------------------------------

_HASHES: dict[str, Any] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def _hash_name(alg: cms.DigestAlgorithm) -> str:
    name = str(alg["algorithm"].native)
    if name not in _HASHES:
        raise ChipError(f"unsupported hash algorithm {name}", code="chip.sod_unreadable")
    return name


def _sod_signed_data(sod: bytes) -> cms.SignedData:
    class_, _, tag, contents = _tlv(sod)
    payload = contents if (class_ == 1 and tag == 23) else sod
    info = cms.ContentInfo.load(payload)
    if info["content_type"].native != "signed_data":
        raise ChipError("EF.SOD is not CMS SignedData", code="chip.sod_unreadable")
    sd = info["content"]
    assert isinstance(sd, cms.SignedData)
    return sd


def _signer_cert(sd: cms.SignedData, si: cms.SignerInfo) -> x509.Certificate | None:
    sid = si["sid"]
    for c in sd["certificates"] or []:
        if c.name != "certificate":
            continue
        cert = c.chosen
        if sid.name == "issuer_and_serial_number":
            ok = (
                cert.issuer == sid.chosen["issuer"]
                and cert.serial_number == sid.chosen["serial_number"].native
            )
        else:
            ok = cert.key_identifier == sid.chosen.native
        if ok:
            return x509.load_der_x509_certificate(cert.dump())
    return None


def _verify_signature(
    cert: x509.Certificate, si: cms.SignerInfo, signed: bytes, hash_name: str
) -> bool:
    key = cert.public_key()
    sig = si["signature"].native
    algo = si["signature_algorithm"]
    h = _HASHES[hash_name]()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            if algo.signature_algo == "rsassa_pss":
                params = algo["parameters"]
                h = _HASHES[str(params["hash_algorithm"]["algorithm"].native)]()
                pad: padding.AsymmetricPadding = padding.PSS(
                    mgf=padding.MGF1(h), salt_length=int(params["salt_length"].native)
                )
            else:
                pad = padding.PKCS1v15()
            key.verify(sig, signed, pad, h)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, signed, ec.ECDSA(h))
        else:
            return False
    except (InvalidSignature, ValueError, KeyError):
        return False
    return True


def _within(cert: x509.Certificate, when: datetime) -> str | None:
    if when < cert.not_valid_before_utc:
        return "not_yet_valid"
    if when > cert.not_valid_after_utc:
        return "expired"
    return None


def verify_chip(
    files: ChipFiles,
    csca_folder: Path | None,
    *,
    clock: Clock | None = None,
    cscas: list[x509.Certificate] | None = None,
) -> ChipVerification:
    """Passive authentication of ``files`` against the CSCA certificates in ``csca_folder`` (or
    ``cscas`` already loaded). See the module's table of reasons."""
    now = (clock or SystemClock()).now()
    out = ChipVerification(reasons=[], checked_at=now)

    def refuse(code: str, message: str) -> None:
        out.reasons.append(Reason(code, message))

    # DG1 and DG2 first: what the chip says is shown even when the proof fails
    dg1 = files.data_groups.get(1)
    if dg1 is None:
        refuse("chip.dg1_missing", "no DG1 was given: the MRZ is what the chip proves")
    else:
        try:
            out.mrz = parse_mrz(dg1_mrz_lines(dg1), today=now.date())
        except (ChipError, MrzFormatError, ValueError) as e:
            refuse("chip.dg1_unreadable", f"DG1: {e}")
    dg2 = files.data_groups.get(2)
    if dg2 is not None:
        try:
            found = dg2_face(dg2)
        except ValueError:
            found = None
        if found is not None:
            out.face_image, out.face_format = found
            try:
                out.face_rgb = decode_face(found[0])
            except Exception:  # a damaged image is still a damaged image, not a crash
                out.face_rgb = None

    try:
        sd = _sod_signed_data(files.sod)
        encap = sd["encap_content_info"]
        if encap["content_type"].dotted != LDS_SECURITY_OBJECT:
            raise ChipError(
                "the SOD does not hold an LDS security object", code="chip.sod_unreadable"
            )
        content = encap["content"].contents if encap["content"].native is not None else b""
        lds = LDSSecurityObject.load(content)
        out.hash_algorithm = _hash_name(lds["hash_algorithm"])
        listed = {
            int(x["data_group_number"].native): bytes(x["data_group_hash_value"].native)
            for x in lds["data_group_hash_values"]
        }
        si = sd["signer_infos"][0]
    except (ChipError, ValueError, TypeError, KeyError, IndexError) as e:
        refuse("chip.sod_unreadable", f"EF.SOD cannot be read as a document security object: {e}")
        return out

    # data group hashes
    for n, data in sorted(files.data_groups.items()):
        if n not in listed:
            refuse("chip.dg_not_in_sod", f"DG{n} was given but the SOD does not list it")
            out.data_group_hashes[n] = "not_listed"
            continue
        ok = hashlib.new(out.hash_algorithm, data).digest() == listed[n]
        out.data_group_hashes[n] = "valid" if ok else "invalid"
        if not ok:
            refuse("chip.dg_hash_mismatch", f"DG{n}'s hash differs from the one the SOD signs")

    # the SOD's signature
    cert = _signer_cert(sd, si)
    if cert is None:
        refuse("chip.no_signer_certificate", "the SOD carries no document signer certificate")
    else:
        out.signer_subject = cert.subject.rfc4514_string()
        digest_name = _hash_name(si["digest_algorithm"])
        signed_attrs = si["signed_attrs"]
        if signed_attrs.native:
            md = next(
                (
                    a["values"][0].native
                    for a in signed_attrs
                    if a["type"].native == "message_digest"
                ),
                None,
            )
            if md != hashlib.new(digest_name, content).digest():
                refuse(
                    "chip.signature_invalid",
                    "the SOD's signed message digest does not match its content",
                )
            signed = signed_attrs.untag().dump(force=True)
        else:
            signed = content
        if not _verify_signature(cert, si, signed, digest_name):
            refuse(
                "chip.signature_invalid",
                "the SOD's signature does not verify with the document signer's key",
            )
        state = _within(cert, now)
        if state:
            refuse(
                f"chip.signer_{state}",
                f"the document signer certificate is {state.replace('_', ' ')} "
                f"(valid {cert.not_valid_before_utc:%Y-%m-%d} to "
                f"{cert.not_valid_after_utc:%Y-%m-%d})",
            )
        # the document signer's issuer among the CSCAs
        if cscas is None:
            cscas = load_csca_folder(csca_folder) if csca_folder is not None else []
        if not cscas:
            refuse(
                "chip.no_csca_folder",
                f"no CSCA certificate to check against ({csca_folder or 'none configured'})",
            )
        else:
            issuer = None
            for ca in cscas:
                try:
                    cert.verify_directly_issued_by(ca)
                except (ValueError, TypeError, InvalidSignature):
                    continue
                issuer = ca
                break
            if issuer is None:
                refuse(
                    "chip.csca_unknown",
                    "no certificate in the CSCA folder issued this document signer "
                    f"({cert.issuer.rfc4514_string()})",
                )
            else:
                out.csca_subject = issuer.subject.rfc4514_string()
                if _within(issuer, now):
                    refuse("chip.csca_expired", "the issuing CSCA certificate is not valid now")
    return out
