//! Register values: raw Modbus words to numbers, by format, word order and scale.
//!
//! A 16-bit register is unsigned or two's-complement signed; 32-bit values span two
//! consecutive registers, and devices disagree on which comes first, so the word order is
//! part of the format. Pure functions, tested exhaustively for 16 bits and by property for 32.

/// Which of two registers holds the high 16 bits of a 32-bit value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WordOrder {
    /// The first register is the high word (Modbus's usual big-endian "ABCD").
    HighFirst,
    /// The first register is the low word ("CDAB", common on PLC-style devices).
    LowFirst,
}

/// How a point's registers are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    S16,
    U16,
    S32(WordOrder),
    U32(WordOrder),
    F32(WordOrder),
}

impl Format {
    /// Registers the value spans.
    pub fn words(self) -> u16 {
        match self {
            Format::S16 | Format::U16 => 1,
            Format::S32(_) | Format::U32(_) | Format::F32(_) => 2,
        }
    }
}

/// Why a value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("expected {expected} registers, got {got}")]
    Length { expected: u16, got: usize },
    #[error("the value is not a finite number")]
    NotFinite,
}

fn joined(words: &[u16], order: WordOrder) -> u32 {
    let (high, low) = match order {
        WordOrder::HighFirst => (words[0], words[1]),
        WordOrder::LowFirst => (words[1], words[0]),
    };
    (u32::from(high) << 16) | u32::from(low)
}

/// `raw × scale`, but for decimal scales (0.1, 0.01) `raw ÷ 10ⁿ`: 38 × 0.1 is
/// 3.8000000000000003 in binary floating point, 38 ÷ 10 is the 3.8 a person expects to read.
fn scaled(raw: f64, scale: f64) -> f64 {
    let inverse = 1.0 / scale;
    let whole = inverse.round();
    if whole.abs() >= 2.0 && (inverse - whole).abs() < 1e-9 * whole.abs() {
        raw / whole
    } else {
        raw * scale
    }
}

/// The value of `words` (exactly [`Format::words`] of them) times `scale`.
pub fn decode(format: Format, words: &[u16], scale: f64) -> Result<f64, ValueError> {
    if words.len() != usize::from(format.words()) {
        return Err(ValueError::Length {
            expected: format.words(),
            got: words.len(),
        });
    }
    let raw = match format {
        Format::S16 => f64::from(words[0] as i16),
        Format::U16 => f64::from(words[0]),
        Format::S32(o) => f64::from(joined(words, o) as i32),
        Format::U32(o) => f64::from(joined(words, o)),
        Format::F32(o) => f64::from(f32::from_bits(joined(words, o))),
    };
    let value = scaled(raw, scale);
    if value.is_finite() {
        Ok(value)
    } else {
        // A NaN or infinity from a float register (sensor fault codes) is no temperature.
        Err(ValueError::NotFinite)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_documented_xy_md02_frames_decode() {
        // Reply 01 04 02 01 31 -> 305 -> 30.5 °C; 0xFF33 -> -20.5 °C (docs/protocols/modbus.md §2).
        assert_eq!(decode(Format::S16, &[0x0131], 0.1), Ok(30.5));
        assert_eq!(decode(Format::S16, &[0xFF33], 0.1), Ok(-20.5));
        assert_eq!(decode(Format::U16, &[0xFF33], 1.0), Ok(65331.0));
        assert_eq!(decode(Format::S16, &[38], 0.1), Ok(3.8));
        assert_eq!(decode(Format::U16, &[550], 0.1), Ok(55.0));
        assert_eq!(decode(Format::S16, &[(-24i16) as u16], 0.1), Ok(-2.4));
    }

    #[test]
    fn every_16_bit_word_decodes_signed_and_unsigned() {
        for w in 0..=u16::MAX {
            assert_eq!(decode(Format::U16, &[w], 1.0), Ok(f64::from(w)));
            assert_eq!(decode(Format::S16, &[w], 1.0), Ok(f64::from(w as i16)));
        }
    }

    #[test]
    fn word_order_decides_which_register_is_high() {
        let words = [0x0001, 0x0002];
        assert_eq!(
            decode(Format::U32(WordOrder::HighFirst), &words, 1.0),
            Ok(65538.0)
        );
        assert_eq!(
            decode(Format::U32(WordOrder::LowFirst), &words, 1.0),
            Ok(131073.0)
        );
        // -4.25 as IEEE 754 single: 0xC088_0000.
        assert_eq!(
            decode(Format::F32(WordOrder::HighFirst), &[0xC088, 0x0000], 1.0),
            Ok(-4.25)
        );
        assert_eq!(
            decode(Format::F32(WordOrder::LowFirst), &[0x0000, 0xC088], 1.0),
            Ok(-4.25)
        );
    }

    #[test]
    fn wrong_lengths_and_non_finite_floats_are_refused() {
        assert_eq!(
            decode(Format::S32(WordOrder::HighFirst), &[1], 1.0),
            Err(ValueError::Length {
                expected: 2,
                got: 1
            })
        );
        assert_eq!(
            decode(Format::S16, &[], 1.0),
            Err(ValueError::Length {
                expected: 1,
                got: 0
            })
        );
        // 0x7FC0_0000 is NaN, 0x7F80_0000 infinity.
        for high in [0x7FC0, 0x7F80, 0xFF80] {
            assert_eq!(
                decode(Format::F32(WordOrder::HighFirst), &[high, 0], 1.0),
                Err(ValueError::NotFinite)
            );
        }
    }

    fn split(v: u32, order: WordOrder) -> [u16; 2] {
        let (high, low) = ((v >> 16) as u16, v as u16);
        match order {
            WordOrder::HighFirst => [high, low],
            WordOrder::LowFirst => [low, high],
        }
    }

    fn order() -> impl Strategy<Value = WordOrder> {
        prop_oneof![Just(WordOrder::HighFirst), Just(WordOrder::LowFirst)]
    }

    proptest! {
        #[test]
        fn s32_round_trips_in_either_order(v: i32, o in order()) {
            let words = split(v as u32, o);
            prop_assert_eq!(decode(Format::S32(o), &words, 1.0), Ok(f64::from(v)));
        }

        #[test]
        fn u32_round_trips_in_either_order(v: u32, o in order()) {
            prop_assert_eq!(decode(Format::U32(o), &split(v, o), 1.0), Ok(f64::from(v)));
        }

        #[test]
        fn finite_f32_round_trips_in_either_order(v in proptest::num::f32::NORMAL | proptest::num::f32::ZERO | proptest::num::f32::SUBNORMAL, o in order()) {
            let words = split(v.to_bits(), o);
            prop_assert_eq!(decode(Format::F32(o), &words, 1.0), Ok(f64::from(v)));
        }

        #[test]
        fn scale_multiplies(w: u16, scale in -1000.0f64..1000.0) {
            let got = decode(Format::S16, &[w], scale).unwrap();
            let want = f64::from(w as i16) * scale;
            prop_assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "{} vs {}", got, want);
        }

        #[test]
        fn decimal_scales_give_the_nearest_decimal(w: i16, places in 1u32..4) {
            let scale = 10f64.powi(-(places as i32));
            let got = decode(Format::S16, &[w as u16], scale).unwrap();
            // Formatting with `places` decimals and parsing back is the value a person reads.
            let text = format!("{:.*}", places as usize, got);
            prop_assert_eq!(text.parse::<f64>().unwrap(), got);
        }

        #[test]
        fn any_words_give_a_value_or_a_clear_error(words in proptest::collection::vec(any::<u16>(), 0..4), o in order()) {
            for f in [Format::S16, Format::U16, Format::S32(o), Format::U32(o), Format::F32(o)] {
                match decode(f, &words, 0.1) {
                    Ok(v) => prop_assert!(v.is_finite()),
                    Err(ValueError::Length { expected, got }) => {
                        prop_assert_eq!(got, words.len());
                        prop_assert_ne!(usize::from(expected), got);
                    }
                    Err(ValueError::NotFinite) => prop_assert!(matches!(f, Format::F32(_))),
                }
            }
        }
    }
}
