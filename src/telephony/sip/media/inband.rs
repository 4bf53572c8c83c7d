//! DTMF tones in the audio itself, for carriers that neither send RFC 4733
//! events nor SIP INFO. Speech and music must not make digits, so a frame
//! counts only when one low and one high DTMF tone carry most of its
//! energy, each clearly above its group, within twist limits; and a key
//! counts only after 40 ms of tone. Frames are 105 samples (13 ms), so the
//! duration is measured from the tone's amplitude in each frame (a frame
//! half covered by the tone shows half the amplitude), not by counting
//! frames, which could not tell 35 ms from 40 ms.

const SAMPLE_RATE: f64 = 8000.0;
/// 105 samples resolve tones 73 Hz apart (697 and 770 Hz) at 8 kHz.
const FRAME: usize = 105;
const LOW: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const HIGH: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [['1', '2', '3', 'A'], ['4', '5', '6', 'B'], ['7', '8', '9', 'C'], ['*', '0', '#', 'D']];
/// Each tone's amplitude floor (full scale is 32767): about -42 dBFS.
const MIN_AMPLITUDE: f64 = 250.0;
/// The strongest tone of a group must be at least 6 dB above the others.
const GROUP_MARGIN: f64 = 2.0;
/// High group up to 8 dB above the low group (forward twist)...
const FORWARD_TWIST: f64 = 2.512;
/// ...and low group up to 4 dB above the high group (reverse twist).
const REVERSE_TWIST: f64 = 1.585;
/// The two tones must carry this share of the frame's energy.
const MIN_TONE_SHARE: f64 = 0.6;
/// 38 ms in samples. The two tones beat, so a frame's energy varies by up
/// to 9 % and the measure by about ±3 ms: a 35 ms tone measures 32-37.9 ms
/// and never counts; a 40 ms tone measures 36-41.4 ms and may be missed;
/// from 45 ms a tone always counts.
const MIN_TONE_SAMPLES: f64 = 304.0;
/// Tone-free frames (26 ms) before the same key counts again; a shorter
/// drop-out is the same press.
const MIN_GAP_FRAMES: u32 = 2;

/// Finds DTMF keys in 8 kHz mono audio fed in any chunk size.
#[derive(Debug)]
pub struct ToneDetector {
    pending: Vec<f64>,
    coefficients: [f64; 8],
    previous_energy: f64,
    run: Option<Run>,
    last_key: Option<char>,
    gap_frames: u32,
}

#[derive(Debug)]
struct Run {
    key: char,
    /// Sum of the frames' energy over the run and its edges.
    energy_sum: f64,
    /// Energy of the frame before the run and after it.
    lead: f64,
    trail: f64,
    peak: f64,
    reported: bool,
}

impl Default for ToneDetector {
    fn default() -> Self {
        let mut coefficients = [0.0; 8];
        for (c, f) in coefficients.iter_mut().zip(LOW.iter().chain(HIGH.iter())) {
            *c = 2.0 * (2.0 * std::f64::consts::PI * f / SAMPLE_RATE).cos();
        }
        ToneDetector {
            pending: Vec::with_capacity(FRAME),
            coefficients,
            previous_energy: 0.0,
            run: None,
            last_key: None,
            gap_frames: MIN_GAP_FRAMES,
        }
    }
}

impl ToneDetector {
    /// Feeds samples; calls `on_key` for each key that completes.
    pub fn feed(&mut self, samples: &[i16], mut on_key: impl FnMut(char)) {
        for &sample in samples {
            self.pending.push(f64::from(sample));
            if self.pending.len() == FRAME {
                if let Some(key) = self.frame() {
                    on_key(key);
                }
                self.pending.clear();
            }
        }
    }

    fn frame(&mut self) -> Option<char> {
        let amplitudes = self.amplitudes();
        let energy = self.pending.iter().map(|x| x * x).sum::<f64>() / FRAME as f64;
        let key = match classify(&amplitudes, energy) {
            Some(tones) => self.tone_frame(tones, energy),
            None => self.quiet_frame(energy),
        };
        self.previous_energy = energy;
        key
    }

    /// Each tone's amplitude by the Goertzel algorithm.
    fn amplitudes(&self) -> [f64; 8] {
        let mut out = [0.0; 8];
        for (amplitude, &coefficient) in out.iter_mut().zip(self.coefficients.iter()) {
            let (mut s1, mut s2) = (0.0, 0.0);
            for &x in &self.pending {
                let s0 = x + coefficient * s1 - s2;
                s2 = s1;
                s1 = s0;
            }
            let power = s1 * s1 + s2 * s2 - coefficient * s1 * s2;
            *amplitude = 2.0 * power.max(0.0).sqrt() / FRAME as f64;
        }
        out
    }

    fn tone_frame(&mut self, tones: (usize, usize), energy: f64) -> Option<char> {
        let key = KEYS[tones.0][tones.1 - 4];
        if self.run.as_ref().is_none_or(|run| run.key != key) {
            self.run = Some(self.start_run(key));
        }
        self.gap_frames = 0;
        let run = self.run.as_mut()?;
        run.energy_sum += energy;
        run.peak = run.peak.max(energy);
        self.report_if_long()
    }

    fn start_run(&self, key: char) -> Run {
        let same_press = self.last_key == Some(key) && self.gap_frames < MIN_GAP_FRAMES;
        Run { key, energy_sum: 0.0, lead: self.previous_energy, trail: 0.0, peak: 0.0, reported: same_press }
    }

    fn quiet_frame(&mut self, energy: f64) -> Option<char> {
        self.gap_frames = self.gap_frames.saturating_add(1);
        let run = self.run.as_mut()?;
        run.trail = energy;
        let key = self.report_if_long();
        self.run = None;
        key
    }

    /// The run's tone duration: each frame counts by its energy relative
    /// to the loudest frame (a frame half covered holds half the energy),
    /// the frames just before and after at most one frame each.
    fn report_if_long(&mut self) -> Option<char> {
        let run = self.run.as_mut()?;
        if run.reported || run.peak <= 0.0 {
            return None;
        }
        // A frame partly covered by the tone may not pass the checks; its
        // share of the tone still counts.
        let edges = (run.lead.min(run.peak) + run.trail.min(run.peak)) / run.peak;
        let frames = run.energy_sum / run.peak + edges;
        if frames * FRAME as f64 >= MIN_TONE_SAMPLES {
            run.reported = true;
            self.last_key = Some(run.key);
            return Some(run.key);
        }
        None
    }
}

/// The (low, high) tone indices when the frame holds one DTMF pair.
fn classify(amplitudes: &[f64; 8], energy: f64) -> Option<(usize, usize)> {
    let low = strongest(&amplitudes[..4])?;
    let high = strongest(&amplitudes[4..])? + 4;
    let (a_low, a_high) = (amplitudes[low], amplitudes[high]);
    if a_low < MIN_AMPLITUDE || a_high < MIN_AMPLITUDE {
        return None;
    }
    if a_high > a_low * FORWARD_TWIST || a_low > a_high * REVERSE_TWIST {
        return None;
    }
    let tone_energy = (a_low * a_low + a_high * a_high) / 2.0;
    if tone_energy < MIN_TONE_SHARE * energy {
        return None;
    }
    Some((low, high))
}

/// The index of the tone clearly above the rest of its group.
fn strongest(group: &[f64]) -> Option<usize> {
    let (best, &top) = group.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
    let clear = group.iter().enumerate().all(|(i, &a)| i == best || a * GROUP_MARGIN <= top);
    clear.then_some(best)
}

#[cfg(test)]
mod tests;
