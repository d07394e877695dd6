//! Pinning processes to cores with `taskset`, when the machine has a core for each side.

use std::process::Command;

/// Where the server and the load generator run.
#[derive(Debug, Clone)]
pub(crate) struct Pinning {
    server: Option<String>,
    load: Option<String>,
}

impl Pinning {
    /// The server on `server_cpu`, the load on `load_cpu`; unpinned (with a warning) when `taskset` is
    /// missing or the machine has a single core.
    pub(crate) fn new(server_cpu: usize, load_cpu: usize) -> Pinning {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let taskset = Command::new("taskset")
            .arg("--version")
            .output()
            .is_ok_and(|output| output.status.success());
        if cores < 2 || !taskset {
            eprintln!("warning: not pinning (cores: {cores}, taskset found: {taskset})");
            return Pinning {
                server: None,
                load: None,
            };
        }
        Pinning {
            server: Some(server_cpu.to_string()),
            load: Some(load_cpu.to_string()),
        }
    }

    /// A command running `program` on the server's core.
    pub(crate) fn server(&self, program: &std::path::Path) -> Command {
        pinned(self.server.as_deref(), program.as_os_str())
    }

    /// A command running `program` on the load generator's core.
    pub(crate) fn load(&self, program: &str) -> Command {
        pinned(self.load.as_deref(), program.as_ref())
    }

    /// How the processes are placed, for the report.
    pub(crate) fn describe(&self) -> String {
        match (&self.server, &self.load) {
            (Some(server), Some(load)) => {
                format!("server pinned to CPU {server}, load generator to CPU {load}")
            }
            _ => "unpinned".to_owned(),
        }
    }
}

fn pinned(cpu: Option<&str>, program: &std::ffi::OsStr) -> Command {
    match cpu {
        Some(cpu) => {
            let mut command = Command::new("taskset");
            command.arg("-c").arg(cpu).arg(program);
            command
        }
        None => Command::new(program),
    }
}
