//! The little DER a JWK needs: writing an RSA public key from its JWK members, and finding the public key
//! of an X.509 certificate (a JWK's `x5c`).

/// DER `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` (RFC 8017 A.1.1).
pub(super) fn rsa_public_key(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(modulus.len() + exponent.len() + 16);
    unsigned_integer(&mut body, modulus);
    unsigned_integer(&mut body, exponent);
    let mut der = Vec::with_capacity(body.len() + 6);
    der.push(SEQUENCE);
    length(&mut der, body.len());
    der.extend_from_slice(&body);
    der
}

/// The DER `SubjectPublicKeyInfo` of an X.509 certificate (RFC 5280 §4.1), or `None` when `certificate` is
/// not a DER certificate. Nothing else of the certificate is looked at: a JWKS fetched from the issuer is
/// trusted for the key it carries, whether as `n`/`e` or as a certificate.
pub(super) fn certificate_public_key(certificate: &[u8]) -> Option<&[u8]> {
    let (SEQUENCE, certificate, _) = element(certificate)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = element(certificate.contents)? else {
        return None;
    };
    let mut rest = tbs.contents;
    // version [0] EXPLICIT, absent for v1 certificates.
    if let (VERSION, _, after) = element(rest)? {
        rest = after;
    }
    // serialNumber, signature, issuer, validity, subject.
    for _ in 0..5 {
        rest = element(rest)?.2;
    }
    match element(rest)? {
        (SEQUENCE, spki, _) => Some(spki.whole),
        _ => None,
    }
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const VERSION: u8 = 0xA0;

/// One DER element as found in its input.
#[derive(Debug, Clone, Copy)]
struct Element<'a> {
    /// Tag, length and contents.
    whole: &'a [u8],
    contents: &'a [u8],
}

/// The first element of `input`: its tag, the element, and what follows it.
fn element(input: &[u8]) -> Option<(u8, Element<'_>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        // Long form, at most four length bytes; 0x80 (indefinite) is not DER.
        let count = usize::from(first & 0x7F);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let len = bytes
            .iter()
            .fold(0usize, |len, &byte| (len << 8) | usize::from(byte));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let header = input.len() - rest.len();
    let (contents, after) = rest.split_at(len);
    let whole = &input[..header + len];
    Some((tag, Element { whole, contents }, after))
}

fn unsigned_integer(out: &mut Vec<u8>, big_endian: &[u8]) {
    let first_nonzero = big_endian
        .iter()
        .position(|&byte| byte != 0)
        .unwrap_or(big_endian.len());
    let digits = &big_endian[first_nonzero..];
    let pad = digits.first().is_none_or(|&byte| byte & 0x80 != 0);
    out.push(INTEGER);
    length(out, digits.len() + usize::from(pad));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(digits);
}

fn length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes
        .iter()
        .position(|&byte| byte != 0)
        .unwrap_or(bytes.len() - 1);
    out.push(0x80 | (bytes.len() - skip) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_minimal_and_positive() {
        let mut out = Vec::new();
        unsigned_integer(&mut out, &[0, 0, 0x01, 0x00, 0x01]);
        assert_eq!(out, [0x02, 0x03, 0x01, 0x00, 0x01]);
        out.clear();
        unsigned_integer(&mut out, &[0x80]);
        assert_eq!(out, [0x02, 0x02, 0x00, 0x80]);
        out.clear();
        length(&mut out, 0x1_02);
        assert_eq!(out, [0x82, 0x01, 0x02]);
    }

    #[test]
    fn elements_are_bounded_by_their_input() {
        let (tag, element, rest) = element(&[0x30, 0x02, 0x05, 0x00, 0xFF]).unwrap();
        assert_eq!(
            (tag, element.contents, rest),
            (0x30, &[0x05, 0x00][..], &[0xFF][..])
        );
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x03, 0x00],
            &[0x30, 0x80],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[0x30, 0x82, 0x01],
        ] {
            assert!(super::element(bad).is_none(), "{bad:?}");
        }
        assert!(certificate_public_key(&[0x30, 0x00]).is_none());
        assert!(certificate_public_key(b"not der").is_none());
    }
}
