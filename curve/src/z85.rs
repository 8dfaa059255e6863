//! Z85 (ZeroMQ RFC 32) for 32-byte CURVE keys. libzmq's decoder accepts characters outside the
//! alphabet and reads them as garbage; this one refuses them, so a typo in a key file is an
//! error at start instead of a key nobody holds.

/// The Z85 alphabet, in digit order.
const ALPHABET: &[u8; 85] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/// Length of a key in Z85 text.
pub const KEY_TEXT_LEN: usize = 40;

/// Why a text is not a Z85 key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Z85Error {
    #[error("a key is {KEY_TEXT_LEN} Z85 characters, this one has {0}")]
    Length(usize),
    #[error("{found:?} at character {at} is not a Z85 character")]
    Character { at: usize, found: char },
    #[error("characters {at} to {} do not encode 4 bytes (value over 2^32)", at + 4)]
    Overflow { at: usize },
}

/// The 32 bytes of a 40-character Z85 key.
pub fn decode_key(text: &str) -> Result<[u8; 32], Z85Error> {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() != KEY_TEXT_LEN {
        return Err(Z85Error::Length(chars.len()));
    }
    let mut key = [0u8; 32];
    for (n, out) in key.chunks_mut(4).enumerate() {
        let mut value: u64 = 0;
        for (i, &found) in chars[n * 5..n * 5 + 5].iter().enumerate() {
            let at = n * 5 + i;
            let digit = ALPHABET
                .iter()
                .position(|&a| char::from(a) == found)
                .ok_or(Z85Error::Character { at: at + 1, found })?;
            value = value * 85 + digit as u64;
        }
        let value = u32::try_from(value).map_err(|_| Z85Error::Overflow { at: n * 5 + 1 })?;
        out.copy_from_slice(&value.to_be_bytes());
    }
    Ok(key)
}

/// The 40-character Z85 text of a key.
pub fn encode_key(key: &[u8; 32]) -> String {
    let mut text = String::with_capacity(KEY_TEXT_LEN);
    for chunk in key.chunks(4) {
        let mut value = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        let mut digits = [0u8; 5];
        for d in digits.iter_mut().rev() {
            *d = ALPHABET[(value % 85) as usize];
            value /= 85;
        }
        text.extend(digits.iter().map(|&d| char::from(d)));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_32_test_vector_round_trips() {
        // The key pair printed in RFC 32 and libzmq's curve tests.
        let text = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
        let key = decode_key(text).expect("valid key");
        assert_eq!(encode_key(&key), text);
        let generated = zmq::CurveKeyPair::new().expect("libzmq with CURVE");
        let ours = encode_key(&generated.public_key);
        assert_eq!(zmq::z85_encode(&generated.public_key).expect("z85"), ours);
        assert_eq!(decode_key(&ours), Ok(generated.public_key));
    }

    #[test]
    fn bad_texts_are_refused_with_the_place() {
        let good = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
        assert_eq!(decode_key(&good[..39]), Err(Z85Error::Length(39)));
        assert_eq!(decode_key(""), Err(Z85Error::Length(0)));
        let typo = format!("{}\"{}", &good[..6], &good[7..]);
        assert_eq!(
            decode_key(&typo),
            Err(Z85Error::Character { at: 7, found: '"' })
        );
        assert_eq!(
            decode_key(&format!("#####{}", &good[5..])),
            Err(Z85Error::Overflow { at: 1 })
        );
    }
}
