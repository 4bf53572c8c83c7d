use super::*;
use crate::telephony::sip::media::g711::Codec;

fn sine(freq: f64, amplitude: f64, n: usize) -> impl Iterator<Item = f64> {
    (0..n).map(move |i| amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / 8000.0).sin())
}

fn tone(low: f64, high: f64, a_low: f64, a_high: f64, ms: usize) -> Vec<i16> {
    let n = ms * 8;
    sine(low, a_low, n).zip(sine(high, a_high, n)).map(|(a, b)| (a + b) as i16).collect()
}

fn silence(ms: usize) -> Vec<i16> {
    vec![0; ms * 8]
}

fn detect(samples: &[i16]) -> String {
    let mut keys = String::new();
    let mut detector = ToneDetector::default();
    // Odd chunk sizes, as packets of any length would arrive.
    for chunk in samples.chunks(160) {
        detector.feed(chunk, |k| keys.push(k));
    }
    keys
}

fn key_freqs(key: char) -> (f64, f64) {
    for (row, keys) in KEYS.iter().enumerate() {
        if let Some(col) = keys.iter().position(|&k| k == key) {
            return (LOW[row], HIGH[col]);
        }
    }
    panic!("not a key: {key}");
}

#[test]
fn all_sixteen_keys_at_several_levels() {
    for amplitude in [600.0, 3000.0, 12000.0] {
        for key in "123A456B789C*0#D".chars() {
            let (low, high) = key_freqs(key);
            let mut audio = silence(20);
            audio.extend(tone(low, high, amplitude, amplitude, 60));
            audio.extend(silence(40));
            assert_eq!(detect(&audio), key.to_string(), "{key} at {amplitude}");
        }
    }
}

#[test]
fn a_sequence_and_a_repeated_key() {
    let mut audio = Vec::new();
    for key in "1559#".chars() {
        let (low, high) = key_freqs(key);
        audio.extend(tone(low, high, 5000.0, 5000.0, 50));
        audio.extend(silence(50));
    }
    assert_eq!(detect(&audio), "1559#");
}

/// Every key, at frame offsets across a whole frame.
#[test]
fn a_long_tone_counts_and_a_35_ms_tone_does_not() {
    for key in "123A456B789C*0#D".chars() {
        let (low, high) = key_freqs(key);
        for offset in (0..105).step_by(7) {
            let mut audio = vec![0; offset];
            audio.extend(tone(low, high, 4000.0, 4000.0, 45));
            audio.extend(silence(50));
            assert_eq!(detect(&audio), key.to_string(), "{key} 45 ms at {offset}");
            let mut audio = vec![0; offset];
            audio.extend(tone(low, high, 4000.0, 4000.0, 35));
            audio.extend(silence(50));
            assert_eq!(detect(&audio), "", "{key} 35 ms at {offset}");
        }
    }
}

#[test]
fn twist_limits() {
    let (low, high) = key_freqs('8');
    let at = |a_low: f64, a_high: f64| {
        let mut audio = tone(low, high, a_low, a_high, 80);
        audio.extend(silence(40));
        detect(&audio)
    };
    let db = |d: f64| 10f64.powf(d / 20.0);
    assert_eq!(at(4000.0, 4000.0 * db(6.0)), "8", "forward 6 dB");
    assert_eq!(at(4000.0 * db(3.0), 4000.0), "8", "reverse 3 dB");
    assert_eq!(at(2000.0, 2000.0 * db(10.0)), "", "forward 10 dB");
    assert_eq!(at(4000.0 * db(6.0), 4000.0), "", "reverse 6 dB");
}

#[test]
fn a_quiet_tone_is_below_the_floor() {
    let (low, high) = key_freqs('2');
    let mut audio = tone(low, high, 150.0, 150.0, 80);
    audio.extend(silence(40));
    assert_eq!(detect(&audio), "");
}

#[test]
fn speech_like_signals_make_no_digit() {
    let n = 8000;
    let chord: Vec<i16> = [350.0, 440.0, 620.0, 1020.0, 1750.0, 2300.0]
        .iter()
        .map(|&f| sine(f, 3000.0, n).collect::<Vec<_>>())
        .fold(vec![0.0; n], |acc, s| acc.iter().zip(s).map(|(a, b)| a + b).collect())
        .into_iter()
        .map(|x| x as i16)
        .collect();
    assert_eq!(detect(&chord), "", "chord");

    let mut seed = 0x1234_5678u32;
    let noise: Vec<i16> = (0..n)
        .map(|_| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((seed >> 16) as i16) / 3
        })
        .collect();
    assert_eq!(detect(&noise), "", "white noise");

    let single: Vec<i16> = sine(770.0, 8000.0, n).map(|x| x as i16).collect();
    assert_eq!(detect(&single), "", "one DTMF frequency");
    let khz: Vec<i16> = sine(1000.0, 8000.0, n).map(|x| x as i16).collect();
    assert_eq!(detect(&khz), "", "1 kHz");
}

#[test]
fn tones_survive_g711() {
    for codec in [Codec::Pcmu, Codec::Pcma] {
        let mut audio = Vec::new();
        for key in "0*D".chars() {
            let (low, high) = key_freqs(key);
            audio.extend(tone(low, high, 2000.0, 2000.0, 60));
            audio.extend(silence(60));
        }
        let coded: Vec<i16> = audio.iter().map(|&s| codec.decode(codec.encode(s))).collect();
        assert_eq!(detect(&coded), "0*D", "{codec:?}");
    }
}

#[test]
fn a_pair_drowned_in_other_sound_is_no_digit() {
    let (low, high) = key_freqs('5');
    let mut audio: Vec<i16> = tone(low, high, 3000.0, 3000.0, 100)
        .iter()
        .zip(sine(2200.0, 6000.0, 800))
        .map(|(&a, b)| a + b as i16)
        .collect();
    audio.extend(silence(40));
    assert_eq!(detect(&audio), "");
}

#[test]
fn two_tones_of_one_group_are_no_digit() {
    let mut audio: Vec<i16> = tone(697.0, 1209.0, 4000.0, 4000.0, 100)
        .iter()
        .zip(sine(852.0, 4000.0, 800))
        .map(|(&a, b)| a + b as i16)
        .collect();
    audio.extend(silence(40));
    assert_eq!(detect(&audio), "");
}
