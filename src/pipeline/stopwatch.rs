//! The device thread's clocks. A step of the pass that takes long on the wall clock but little on
//! the thread's CPU clock was waiting (for the GPU, for a lock, for a core the decoding threads
//! hold), not working: on a lent GPU the device thread spent several times a forward's time per
//! batch (docs/performance.md, "GPU"), and only the two clocks side by side say which kind of
//! time that was.

use std::time::Instant;

use super::outcome::{DeviceTime, Steps};

/// The wall and this thread's CPU clocks at the last lap.
pub struct Stopwatch {
    wall: Instant,
    cpu: f64,
}

impl Stopwatch {
    /// Started now, on the calling thread (the CPU clock is that thread's).
    pub fn start() -> Stopwatch {
        Stopwatch {
            wall: Instant::now(),
            cpu: thread_cpu_s(),
        }
    }

    /// Adds the time since the last lap to `step` of `time`, on both clocks.
    pub fn lap(&mut self, time: &mut DeviceTime, step: fn(&mut Steps) -> &mut f64) {
        let (wall, cpu) = (Instant::now(), thread_cpu_s());
        *step(&mut time.wall) += wall.duration_since(self.wall).as_secs_f64();
        *step(&mut time.cpu) += (cpu - self.cpu).max(0.0);
        self.wall = wall;
        self.cpu = cpu;
    }
}

/// CPU seconds the calling thread has used (0 where the clock cannot be read).
fn thread_cpu_s() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to fill.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } != 0 {
        return 0.0;
    }
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_shows_on_both_clocks_and_sleep_on_the_wall_only() {
        let mut time = DeviceTime::default();
        let mut watch = Stopwatch::start();
        // Work measured on the thread's own clock: another process busy on the machine can
        // stretch the wall time of a loop, never take CPU time from a thread that has used it.
        let begun = thread_cpu_s();
        let mut x = 0u64;
        while thread_cpu_s() - begun < 0.03 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        watch.lap(&mut time, |s| &mut s.forwards_s);
        std::thread::sleep(std::time::Duration::from_millis(60));
        watch.lap(&mut time, |s| &mut s.waiting_for_device_s);
        assert!(time.cpu.forwards_s >= 0.03, "{time:?}");
        // The wall clock passes at least as fast as one thread's CPU clock (1 ms for the
        // clocks' different granularity).
        assert!(
            time.wall.forwards_s >= time.cpu.forwards_s - 1e-3,
            "{time:?}"
        );
        assert!(time.wall.waiting_for_device_s >= 0.06, "{time:?}");
        assert!(time.cpu.waiting_for_device_s < 0.02, "{time:?}");
    }
}
