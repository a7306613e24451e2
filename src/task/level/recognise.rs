//! "Image not recognised": frames that are not a live lumbar sagittal view
//! get no guidance before the classifier is asked, from the model input
//! itself: a blank screen (almost no texture) or a frozen one (the same
//! image `frozen_frames` times in a row; live ultrasound always changes a
//! little). What the classifier does not know (other anatomy, a transverse
//! view) it answers with `off_spine`, which the task reports as not
//! recognised when the image is not the dark screen of a lift-off.

/// Watches the model inputs of one stream. Allocated once; no allocation per frame.
pub struct Recogniser {
    /// The previous input, as gray 0..1.
    previous: Vec<f32>,
    /// The model input's normalisation, undone here: gray = v * std + mean.
    input_mean: f32,
    input_std: f32,
    has_previous: bool,
    same_run: u32,
    min_texture: f32,
    frozen_frames: u32,
}

/// Mean absolute change per pixel (0..1 gray) below which two frames are the same image.
const SAME_IMAGE_MEAN_ABS: f32 = 1e-4;

impl Recogniser {
    /// `len`: the model input's length; `input_mean`, `input_std`: its
    /// normalisation (manifest); thresholds from `[level]`.
    pub fn new(len: usize, input_mean: f32, input_std: f32, min_texture: f32, frozen_frames: u32) -> Self {
        Self { previous: vec![0.0; len], input_mean, input_std, has_previous: false, same_run: 0, min_texture, frozen_frames }
    }

    /// One model input: `true` when it is not an image the task can work on.
    pub fn not_recognised(&mut self, thumb: &[f32]) -> bool {
        if thumb.len() != self.previous.len() || thumb.is_empty() {
            return true;
        }
        let n = thumb.len() as f32;
        let (m, sd) = (self.input_mean, self.input_std);
        // One pass: sum, sum of squares, change from the previous input; then keep this one.
        let (mut sum, mut sum_sq, mut diff) = (0.0f32, 0.0f32, 0.0f32);
        for (p, &v) in self.previous.iter_mut().zip(thumb) {
            let g = v * sd + m;
            sum += g;
            sum_sq += g * g;
            diff += (g - *p).abs();
            *p = g;
        }
        let mean = sum / n;
        let var = (sum_sq / n - mean * mean).max(0.0);
        let same = self.has_previous && diff / n < SAME_IMAGE_MEAN_ABS;
        self.same_run = if same { self.same_run.saturating_add(1) } else { 0 };
        self.has_previous = true;
        var.sqrt() < self.min_texture || self.same_run + 1 >= self.frozen_frames
    }

    /// Mean of the last input (0..1 gray).
    pub fn last_mean(&self) -> f32 {
        self.previous.iter().sum::<f32>() / self.previous.len().max(1) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn textured(seed: u32) -> Vec<f32> {
        let mut x = seed.wrapping_mul(2_654_435_761).max(1);
        (0..64)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x % 1000) as f32 / 1000.0
            })
            .collect()
    }

    #[test]
    fn blank_and_frozen_screens_are_not_recognised_live_texture_is() {
        let mut r = Recogniser::new(64, 0.0, 1.0, 0.02, 5);
        assert!(r.not_recognised(&[0.3; 64]), "a uniform grey screen");
        for i in 0..20 {
            assert!(!r.not_recognised(&textured(i)), "live, changing texture (frame {i})");
        }
        let still = textured(99);
        let verdicts: Vec<bool> = (0..6).map(|_| r.not_recognised(&still)).collect();
        assert_eq!(verdicts, [false, false, false, false, true, true], "the 5th identical frame in a row is frozen");
        assert!(!r.not_recognised(&textured(100)), "it moves again");
    }
}
