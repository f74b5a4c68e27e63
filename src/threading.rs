//! How many threads libtorch uses when other processes want the cores too.
//!
//! libtorch's OpenMP threads wait for each other at every barrier of every operator, spinning
//! first (libgomp's default: 300,000 times) and sleeping after. On a machine where another
//! process keeps a core busy (a training job, a notebook), a thread that waits for a thread
//! the scheduler has parked spins away the core that thread needs: with one of two cores busy,
//! a run took 1.91 times as long as the same run on one idle core (docs/performance.md, "A busy
//! machine"). libgomp reads its waiting policy before `main`, so it cannot be changed here; the
//! number of threads can. While the models load, zoo-select measures how much CPU other
//! processes take (`/proc/stat` less its own time in `/proc/self/stat`) and, if they keep whole
//! cores busy, runs libtorch on the cores left: one thread waits for no other.

use std::time::Instant;

/// CPU time counters at one instant: the whole machine's busy time and this process's.
pub struct Load {
    at: Instant,
    machine_busy: u64,
    own: u64,
}

/// Clock ticks (USER_HZ) as /proc reports them.
const TICKS_PER_S: f64 = 100.0;

impl Load {
    /// The counters now; None where /proc cannot be read (not Linux).
    pub fn now() -> Option<Load> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
        let machine_busy = cpu.iter().take(8).sum::<u64>() - cpu.get(3)? - cpu.get(4)?;
        let own_stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name (which may hold spaces), from its closing parenthesis.
        let fields: Vec<&str> = own_stat.rsplit_once(')')?.1.split_whitespace().collect();
        let own = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(Load {
            at: Instant::now(),
            machine_busy,
            own,
        })
    }

    /// Cores other processes kept busy on average since `self` (0 when unknown).
    pub fn others_since(&self) -> f64 {
        let Some(now) = Load::now() else {
            return 0.0;
        };
        let wall = now.at.duration_since(self.at).as_secs_f64() * TICKS_PER_S;
        if wall < 10.0 {
            return 0.0;
        }
        let busy = now.machine_busy.saturating_sub(self.machine_busy) as f64;
        let own = now.own.saturating_sub(self.own) as f64;
        ((busy - own) / wall).max(0.0)
    }
}

/// Sets libtorch's threads to the cores other processes left free since `since` (at least one),
/// if they kept at least one whole core busy; returns the thread count when it changed it.
pub fn fit_to_load(since: &Load) -> Option<usize> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let others = since.others_since();
    let busy_cores = others.round() as usize;
    if busy_cores == 0 || cores <= 1 {
        return None;
    }
    let threads = cores.saturating_sub(busy_cores).max(1);
    if threads >= tch::get_num_threads() as usize {
        return None;
    }
    tch::set_num_threads(threads as i32);
    tracing::info!(
        "other processes keep {others:.1} of {cores} cores busy: libtorch runs on {threads} thread(s)"
    );
    Some(threads)
}

/// libtorch's CPU threads while GPUs run the pass, given back when dropped.
///
/// When every device is a GPU, the host's libtorch work is the device thread's small copies of
/// feature rows, and an OpenMP team of one thread per core only competes with the decoding
/// threads that hold those cores: with one libtorch thread the device thread files its rows in a
/// fraction of the time (measured on a lent H200: docs/performance.md, "GPU"). Scoring, after
/// the pass, gets the threads back.
pub struct GpuPassThreads {
    before: i32,
}

impl GpuPassThreads {
    /// One libtorch thread if every device in `devices` is a GPU (None otherwise).
    pub fn one_if_all_gpus(devices: &[tch::Device]) -> Option<GpuPassThreads> {
        if devices.is_empty() || !devices.iter().all(|d| d.is_cuda()) {
            return None;
        }
        let before = tch::get_num_threads();
        tch::set_num_threads(1);
        Some(GpuPassThreads { before })
    }
}

impl Drop for GpuPassThreads {
    fn drop(&mut self) {
        tch::set_num_threads(self.before);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn gpus_only_get_one_libtorch_thread_for_the_pass_and_give_it_back() {
        // Setting the count touches no GPU, so this runs anywhere.
        tch::set_num_threads(2);
        assert!(GpuPassThreads::one_if_all_gpus(&[Device::Cpu, Device::Cuda(0)]).is_none());
        assert!(GpuPassThreads::one_if_all_gpus(&[]).is_none());
        assert_eq!(tch::get_num_threads(), 2);
        let guard = GpuPassThreads::one_if_all_gpus(&[Device::Cuda(0), Device::Cuda(1)]);
        assert!(guard.is_some());
        assert_eq!(tch::get_num_threads(), 1);
        drop(guard);
        assert_eq!(tch::get_num_threads(), 2);
    }
}
