"""Synthetic SPECIMEN chips: a CSCA, a document signer, data groups and an EF.SOD, for tests.

:func:`make_pki` creates a country signing CA (self-signed) and a document signer certificate it
issues; :func:`make_chip` builds DG1 (the MRZ), DG2 (a face image in an ISO/IEC 19794-5 record)
and the SOD signed by the document signer, built with asn1crypto and signed with cryptography.
Everything is invented: the state is ``UTO`` (ICAO's specimen state) and names say SPECIMEN.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from datetime import datetime, timedelta

from asn1crypto import algos, cms, core, parser
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from fieldid.documents.chip import (
    LDS_SECURITY_OBJECT,
    ChipFiles,
    DataGroupHash,
    DataGroupHashValues,
    LDSSecurityObject,
)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Pki:
    csca_key: PrivateKey
    csca: x509.Certificate
    ds_key: PrivateKey
    ds: x509.Certificate


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "UT"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Utopia SPECIMEN"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _key(kind: str) -> PrivateKey:
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_pki(
    now: datetime,
    *,
    kind: str = "ec",
    csca_cn: str = "CSCA UTOPIA SPECIMEN",
    ds_valid_days: tuple[int, int] = (-30, 3650),
    csca_key: PrivateKey | None = None,
    csca: x509.Certificate | None = None,
) -> Pki:
    """A CSCA and a document signer valid from ``now + ds_valid_days[0]`` to ``now +
    ds_valid_days[1]``. Pass an existing ``csca_key``/``csca`` to issue another signer."""
    if csca_key is None or csca is None:
        csca_key = _key(kind)
        csca = (
            x509.CertificateBuilder()
            .subject_name(_name(csca_cn))
            .issuer_name(_name(csca_cn))
            .public_key(csca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=365))
            .not_valid_after(now + timedelta(days=365 * 15))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(csca_key, hashes.SHA256())
        )
    ds_key = _key(kind)
    ds = (
        x509.CertificateBuilder()
        .subject_name(_name("Document Signer UTOPIA SPECIMEN"))
        .issuer_name(csca.subject)
        .public_key(ds_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + timedelta(days=ds_valid_days[0]))
        .not_valid_after(now + timedelta(days=ds_valid_days[1]))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(csca_key, hashes.SHA256())
    )
    return Pki(csca_key, csca, ds_key, ds)


def make_dg1(mrz_lines: list[str]) -> bytes:
    return bytes(parser.emit(1, 1, 1, parser.emit(1, 0, 31, "".join(mrz_lines).encode("ascii"))))


def _iso19794_5(image: bytes, jp2: bool) -> bytes:
    """A minimal ISO/IEC 19794-5 facial record holding one image."""
    info = struct.pack(">IHBBBBB3sHHH", 20 + 12 + len(image), 0, 0, 0, 0, 0, 0, b"\0\0\0", 0, 0, 0)
    info = info[:20].ljust(20, b"\0")
    img_info = struct.pack(">BBHHBBHH", 1, 2 if jp2 else 0, 0, 0, 0, 0, 0, 0)[:12].ljust(12, b"\0")
    header = b"FAC\x00" + b"010\x00" + struct.pack(">IH", 14 + 20 + 12 + len(image), 1)
    return header + info + img_info + image


def make_dg2(image: bytes, *, jp2: bool = False) -> bytes:
    """DG2 with one face image (JPEG, or JPEG 2000 when ``jp2``)."""
    header = parser.emit(2, 1, 1, parser.emit(2, 0, 2, b"\x01\x01"))  # A1 { 81 version }
    block = parser.emit(1, 0, 46, _iso19794_5(image, jp2))  # 5F2E
    bit = parser.emit(1, 1, 96, header + block)  # 7F60
    group = parser.emit(1, 1, 97, parser.emit(0, 0, 2, b"\x01") + bit)  # 7F61 { 02 count, ...}
    return bytes(parser.emit(1, 1, 21, group))  # 75


def make_sod(
    data_groups: dict[int, bytes],
    ds_key: PrivateKey,
    ds: x509.Certificate,
    *,
    hash_name: str = "sha256",
) -> bytes:
    """EF.SOD: CMS SignedData over an LDS security object listing the data groups' hashes."""
    lds = LDSSecurityObject(
        {
            "version": 0,
            "hash_algorithm": algos.DigestAlgorithm({"algorithm": hash_name}),
            "data_group_hash_values": DataGroupHashValues(
                [
                    DataGroupHash(
                        {
                            "data_group_number": n,
                            "data_group_hash_value": hashlib.new(hash_name, d).digest(),
                        }
                    )
                    for n, d in sorted(data_groups.items())
                ]
            ),
        }
    )
    content = lds.dump()
    signed_attrs = cms.CMSAttributes(
        [
            cms.CMSAttribute({"type": "content_type", "values": [LDS_SECURITY_OBJECT]}),
            cms.CMSAttribute(
                {"type": "message_digest", "values": [hashlib.new(hash_name, content).digest()]}
            ),
        ]
    )
    to_sign = signed_attrs.dump()
    h = {
        "sha256": hashes.SHA256(),
        "sha384": hashes.SHA384(),
        "sha512": hashes.SHA512(),
        "sha1": hashes.SHA1(),
        "sha224": hashes.SHA224(),
    }[hash_name]
    if isinstance(ds_key, ec.EllipticCurvePrivateKey):
        sig = ds_key.sign(to_sign, ec.ECDSA(h))
        sig_alg = f"{hash_name}_ecdsa"
    else:
        from cryptography.hazmat.primitives.asymmetric import padding

        sig = ds_key.sign(to_sign, padding.PKCS1v15(), h)
        sig_alg = f"{hash_name}_rsa"
    cert = ax509.Certificate.load(ds.public_bytes(serialization.Encoding.DER))
    signer = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {
                    "issuer_and_serial_number": cms.IssuerAndSerialNumber(
                        {"issuer": cert.issuer, "serial_number": cert.serial_number}
                    )
                }
            ),
            "digest_algorithm": algos.DigestAlgorithm({"algorithm": hash_name}),
            "signed_attrs": signed_attrs,
            "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": sig_alg}),
            "signature": sig,
        }
    )
    sd = cms.SignedData(
        {
            "version": "v3",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": hash_name})],
            "encap_content_info": {
                "content_type": LDS_SECURITY_OBJECT,
                "content": core.ParsableOctetString(content),
            },
            "certificates": [cert],
            "signer_infos": [signer],
        }
    )
    info = cms.ContentInfo({"content_type": "signed_data", "content": sd})
    return bytes(parser.emit(1, 1, 23, info.dump()))


def make_chip(
    mrz_lines: list[str], face: bytes | None, pki: Pki, *, jp2: bool = False
) -> ChipFiles:
    dgs = {1: make_dg1(mrz_lines)}
    if face is not None:
        dgs[2] = make_dg2(face, jp2=jp2)
    return ChipFiles(make_sod(dgs, pki.ds_key, pki.ds), dgs)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)
