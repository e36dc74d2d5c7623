//! [`Builder`]: the settings of a runtime.

use std::fmt;
use std::time::Duration;

use crate::dispatch::group::Group;
use crate::dispatch::Dispatcher;
use crate::dormancy::ActivityGate;
use crate::supervise::Escalation;
use crate::sync::{thread, Arc};

use super::{BuildError, Runtime, RuntimeShared, Settings};

/// The name of the dispatcher every cell runs on unless told otherwise.
/// Reserved: [`Builder::dispatcher`] cannot define another one by this name.
pub const DEFAULT_DISPATCHER: &str = "default";

/// The most worker threads one dispatcher may have; more are refused by
/// [`Builder::build`] with [`BuildError::TooManyWorkers`].
pub const MAX_WORKER_THREADS: usize = 1024;

/// Settings of a [`Runtime`]. Create one with [`Runtime::builder`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cellrt::Runtime;
///
/// let runtime = Runtime::builder()
///     .worker_threads(2)
///     .dispatcher("io", 1)
///     .default_capacity(64)
///     .throughput(16)
///     .send_timeout(Duration::from_secs(1))
///     .build()?;
/// # runtime.shutdown(Duration::from_secs(1));
/// # Ok::<(), cellrt::BuildError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    worker_threads: Option<usize>,
    throughput: usize,
    default_capacity: usize,
    send_timeout: Duration,
    dispatchers: Vec<(String, usize)>,
    groups: Vec<(String, usize)>,
    quiet_panics: bool,
    dead_letter_capacity: usize,
    threadless: bool,
    on_escalation: Option<EscalationHook>,
    #[cfg(feature = "observe")]
    observation: crate::observe::ObservationConfig,
    #[cfg(feature = "storage")]
    storage: Option<crate::store::StorageConfig>,
}

/// What the runtime root does when a top-level supervisor gives up.
#[derive(Clone)]
pub(crate) struct EscalationHook(pub(crate) Arc<dyn Fn(&Escalation) + Send + Sync>);

impl fmt::Debug for EscalationHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EscalationHook(..)")
    }
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            worker_threads: None,
            throughput: 32,
            default_capacity: 32,
            send_timeout: Duration::from_secs(5),
            dispatchers: Vec::new(),
            groups: Vec::new(),
            quiet_panics: false,
            dead_letter_capacity: 1024,
            threadless: false,
            on_escalation: None,
            #[cfg(feature = "observe")]
            observation: crate::observe::ObservationConfig::default(),
            #[cfg(feature = "storage")]
            storage: None,
        }
    }
}

impl Builder {
    /// Worker threads of the default dispatcher.
    ///
    /// # Default
    ///
    /// One per core. Valid: 1 to [`MAX_WORKER_THREADS`]; `0` and larger
    /// counts are refused by [`build`](Builder::build).
    ///
    /// Besides the workers, the runtime runs one timer thread, started when
    /// first needed: with observation on (the default), `build` starts it
    /// for the analysis window; otherwise a cell's timer, a handler with a
    /// deadline or a periodic flush starts it. So `worker_threads(1)` gives
    /// two threads by default, and one until a timer is needed with
    /// observation off. Idle, every one of them sleeps: the analysis window
    /// stops waking once every worker has slept through a whole window, and
    /// no thread wakes up again until a message arrives or a timer is due.
    pub fn worker_threads(&mut self, threads: usize) -> &mut Self {
        self.worker_threads = Some(threads);
        self
    }

    /// Thread-less mode: the runtime starts no thread at all, and the
    /// application drives it from its own loop (a board's main loop, a
    /// game's frame) with [`Runtime::run_once`] or
    /// [`Runtime::run_until_idle`], sleeping until
    /// [`Runtime::next_deadline`] in between.
    ///
    /// Thread counts ([`worker_threads`](Builder::worker_threads),
    /// [`dispatcher`](Builder::dispatcher)) are ignored: dispatchers keep
    /// their names and run queues, served by `run_once` in the order they
    /// were added, the default one first. Timers, the analysis window and
    /// periodic flushes fire inside `run_once` when due. There is no
    /// deadline watchdog: a handler cannot be looked at while it runs on
    /// the caller's thread, and an overrun is reported when it returns.
    ///
    /// A call that waits for cells, such as `Pending::wait` or a blocking
    /// `send` to a full mailbox, only returns when another thread drives
    /// the runtime or its timeout passes: on the driving thread, use
    /// `try_send` and [`Pending::try_take`](crate::Pending::try_take) after
    /// a `run_until_idle`. [`Runtime::start_supervisor`] and
    /// [`Runtime::shutdown`] drive the runtime themselves while they wait.
    ///
    /// # Default
    ///
    /// `false`: worker threads.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cellrt::{Cell, CellError, Context, Runtime};
    ///
    /// struct Blink(u32);
    ///
    /// impl Cell for Blink {
    ///     type Message = ();
    ///     fn handle(&mut self, _: &mut Context<Self>, (): ()) -> Result<(), CellError> {
    ///         self.0 += 1;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let runtime = Runtime::builder().threadless(true).build()?;
    /// let blink = runtime.spawn(Blink(0))?;
    /// blink.try_send(())?;
    /// let done = runtime.run_until_idle()?;
    /// assert_eq!(done.turns, 1);
    /// # runtime.shutdown(Duration::from_secs(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn threadless(&mut self, threadless: bool) -> &mut Self {
        self.threadless = threadless;
        self
    }

    /// Adds a dispatcher: a separate pool of `threads` workers. Cells spawned
    /// with [`CellConfig::dispatcher`](crate::CellConfig::dispatcher) naming
    /// it run only there (a bulkhead).
    ///
    /// Names follow the grammar of cell names (see
    /// [`NameError`](crate::NameError)), are unique, and are not
    /// [`DEFAULT_DISPATCHER`] (`"default"`, reserved: size the default
    /// dispatcher with [`worker_threads`](Builder::worker_threads));
    /// `threads` is 1 to [`MAX_WORKER_THREADS`]. `build` checks, and
    /// ignores `threads` for a [thread-less](Builder::threadless) runtime.
    pub fn dispatcher(&mut self, name: impl Into<String>, threads: usize) -> &mut Self {
        self.dispatchers.push((name.into(), threads));
        self
    }

    /// Adds a group: at most `max_concurrent` of the cells spawned with
    /// [`CellConfig::group`](crate::CellConfig::group) naming it run a turn
    /// at the same time, whatever dispatcher each runs on.
    ///
    /// A member the group cannot admit does not hold a worker while it
    /// waits: it is parked in the group, and put back on its dispatcher's
    /// run queue when a member's turn ends (oldest parked first). So a group
    /// of slow or blocking cells sharing a dispatcher takes at most
    /// `max_concurrent` of its workers, and the other cells keep the rest.
    /// Membership is explicit: children do not inherit their parent's group.
    /// [`Runtime::group_stats`] shows the group's activity.
    ///
    /// Names follow the grammar of cell names (see
    /// [`NameError`](crate::NameError)) and are unique; `max_concurrent`
    /// must be at least 1 (any larger value is valid). `build` checks.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cellrt::{Cell, CellConfig, CellError, Context, Runtime};
    ///
    /// struct Lookup;
    ///
    /// impl Cell for Lookup {
    ///     type Message = cellrt::Reply<&'static str>;
    ///
    ///     fn handle(&mut self, _ctx: &mut Context<Self>, reply: Self::Message) -> Result<(), CellError> {
    ///         // A slow call to a database that takes two connections at most.
    ///         drop(reply.send("row"));
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let runtime = Runtime::builder().worker_threads(4).group("database", 2).build()?;
    /// let lookups: Vec<_> = (0..6)
    ///     .map(|_| runtime.spawn_with(CellConfig::new().group("database"), Lookup))
    ///     .collect::<Result<_, _>>()?;
    /// for lookup in &lookups {
    ///     assert_eq!(lookup.ask(|reply| reply)?.wait(Duration::from_secs(5))?, "row");
    /// }
    /// let stats = runtime.group_stats("database").expect("the group exists");
    /// assert_eq!(stats.max_concurrent, 2);
    /// assert!(stats.turns >= 6);
    /// # runtime.shutdown(Duration::from_secs(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn group(&mut self, name: impl Into<String>, max_concurrent: usize) -> &mut Self {
        self.groups.push((name.into(), max_concurrent));
        self
    }

    /// Most user messages a cell handles in one turn before its worker moves
    /// on to another cell. Lower is fairer, higher is faster.
    ///
    /// # Default
    ///
    /// 32. Valid: 1 to `usize::MAX`; `0` is refused by `build`.
    pub fn throughput(&mut self, messages: usize) -> &mut Self {
        self.throughput = messages;
        self
    }

    /// Mailbox capacity of cells spawned without one, in messages: a bound,
    /// not an allocation (see [`CellConfig::capacity`](crate::CellConfig::capacity)),
    /// so it does not change the memory of an idle cell.
    ///
    /// # Default
    ///
    /// 32. Valid: 1 to `usize::MAX`; `0` is refused by `build`.
    pub fn default_capacity(&mut self, messages: usize) -> &mut Self {
        self.default_capacity = messages;
        self
    }

    /// How long [`Addr::send`](crate::Addr::send) and
    /// [`Addr::ask`](crate::Addr::ask) wait for room in a full mailbox.
    ///
    /// Every value is valid. `Duration::ZERO` means "never wait": `send`
    /// and `ask` then behave as [`try_send`](crate::Addr::try_send), and a
    /// full mailbox returns `Full(msg)` at once. A timeout too long to add
    /// to the clock (`Duration::MAX`) waits without a bound.
    ///
    /// # Default
    ///
    /// 5 seconds.
    pub fn send_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.send_timeout = timeout;
        self
    }

    /// Whether panics in cell code skip the process's panic hook (which
    /// prints them). They are recorded as failures either way.
    ///
    /// # Default
    ///
    /// `false`: panics are printed as usual.
    pub fn quiet_panics(&mut self, quiet: bool) -> &mut Self {
        self.quiet_panics = quiet;
        self
    }

    /// How many dead letters [`Runtime::dead_letters`] keeps (the latest).
    /// `0` keeps none; they are still counted and traced.
    ///
    /// # Default
    ///
    /// 1,024.
    pub fn dead_letter_capacity(&mut self, letters: usize) -> &mut Self {
        self.dead_letter_capacity = letters;
        self
    }

    /// The runtime root's policy: called, on the thread of the supervisor
    /// that gave up, when a top-level supervisor exceeds its restart
    /// intensity. The supervisor's subtree is stopped by then and stays
    /// stopped; the escalation is also kept in [`Runtime::escalations`].
    /// The hook may shut the process down, page an operator, or start the
    /// tree again from another thread. It must not block.
    ///
    /// # Default
    ///
    /// None: the escalation is traced and kept.
    pub fn on_escalation(&mut self, hook: impl Fn(&Escalation) + Send + Sync + 'static) -> &mut Self {
        self.on_escalation = Some(EscalationHook(Arc::new(hook)));
        self
    }

    /// How the runtime observes its cells: metrics, analysis window, decay,
    /// objectives, journal and triage settings. See
    /// [`ObservationConfig`](crate::ObservationConfig).
    ///
    /// # Default
    ///
    /// On, with the defaults of `ObservationConfig`.
    #[cfg(feature = "observe")]
    pub fn observation(&mut self, config: crate::observe::ObservationConfig) -> &mut Self {
        self.observation = config;
        self
    }

    /// Gives cells storage: one database, a tree per cell
    /// ([`Context::store`](crate::Context::store)). Opened by
    /// [`build`](Builder::build).
    ///
    /// # Default
    ///
    /// None: `store` returns [`StoreError::Disabled`](crate::StoreError::Disabled).
    #[cfg(feature = "storage")]
    pub fn storage(&mut self, config: crate::store::StorageConfig) -> &mut Self {
        self.storage = Some(config);
        self
    }

    /// The configured groups, checked.
    fn groups(&self) -> Result<Vec<Arc<Group>>, BuildError> {
        let mut groups: Vec<Arc<Group>> = Vec::with_capacity(self.groups.len());
        for (name, max_concurrent) in &self.groups {
            if let Err(reason) = crate::path::validate_name(name) {
                return Err(BuildError::InvalidGroupName { name: name.clone(), reason });
            }
            if groups.iter().any(|group| &**group.name() == name) {
                return Err(BuildError::DuplicateGroup { name: name.clone() });
            }
            if *max_concurrent == 0 {
                return Err(BuildError::ZeroGroupLimit { group: name.clone() });
            }
            groups.push(Group::new(name, *max_concurrent));
        }
        Ok(groups)
    }

    /// What observes the runtime's cells, with its journal: persisted in
    /// the storage's `sys/journal` tree when there is one.
    #[cfg(feature = "observe")]
    fn observer(
        &self,
        #[cfg(feature = "storage")] storage: Option<&crate::store::Storage>,
    ) -> Result<crate::observe::observer::Observer, BuildError> {
        use crate::observe::journal::Journal;
        use crate::observe::observer::Observer;
        use crate::observe::ObservationConfigError as Refused;
        let config = self.observation.clone();
        #[cfg(feature = "storage")]
        if let Some(storage) = storage {
            use crate::observe::journal::JournalOpenError;
            let journal = Journal::persisted(config.journal.clone(), storage.journal().clone()).map_err(
                |err| match err {
                    JournalOpenError::Config(err) => BuildError::Observation(Refused::Journal(err)),
                    JournalOpenError::Store(err) => BuildError::Storage(err),
                },
            )?;
            return Observer::new(config, journal).map_err(BuildError::Observation);
        }
        let journal = Journal::new(config.journal.clone())
            .map_err(|err| BuildError::Observation(Refused::Journal(err)))?;
        Observer::new(config, journal).map_err(BuildError::Observation)
    }

    /// Starts the runtime's worker threads.
    ///
    /// # Errors
    ///
    /// [`BuildError`] names the refused setting, or the thread the operating
    /// system would not start.
    pub fn build(&mut self) -> Result<Runtime, BuildError> {
        if self.throughput == 0 {
            return Err(BuildError::ZeroThroughput);
        }
        if self.default_capacity == 0 {
            return Err(BuildError::ZeroCapacity);
        }
        let default_threads = self.worker_threads.unwrap_or_else(thread::available_parallelism);
        let mut pools = vec![(DEFAULT_DISPATCHER.to_owned(), default_threads)];
        for (name, threads) in &self.dispatchers {
            if let Err(reason) = crate::path::validate_name(name) {
                return Err(BuildError::InvalidDispatcherName { name: name.clone(), reason });
            }
            if name == DEFAULT_DISPATCHER {
                return Err(BuildError::ReservedDispatcherName { name: name.clone() });
            }
            if pools.iter().any(|(existing, _)| existing == name) {
                return Err(BuildError::DuplicateDispatcher { name: name.clone() });
            }
            pools.push((name.clone(), *threads));
        }
        if self.threadless {
            for (_, threads) in &mut pools {
                *threads = 0;
            }
        }
        if !self.threadless {
            if let Some((name, _)) = pools.iter().find(|(_, threads)| *threads == 0) {
                return Err(BuildError::ZeroWorkers { dispatcher: name.clone() });
            }
            if let Some((name, threads)) = pools.iter().find(|(_, threads)| *threads > MAX_WORKER_THREADS) {
                return Err(BuildError::TooManyWorkers { dispatcher: name.clone(), threads: *threads });
            }
        }
        let groups = self.groups()?;
        #[cfg(feature = "observe")]
        self.observation.validate().map_err(BuildError::Observation)?;
        // Before any thread starts: a refused storage leaves nothing behind.
        #[cfg(feature = "storage")]
        let storage = match &self.storage {
            Some(config) => Some(crate::store::Storage::open(config).map_err(BuildError::Storage)?),
            None => None,
        };
        #[cfg(all(feature = "observe", feature = "storage"))]
        let observer = self.observer(storage.as_ref())?;
        #[cfg(all(feature = "observe", not(feature = "storage")))]
        let observer = self.observer()?;
        crate::failure::install_panic_hook();
        let activity = Arc::new(ActivityGate::new());
        let mut dispatchers: Vec<Arc<Dispatcher>> = Vec::with_capacity(pools.len());
        for (name, threads) in &pools {
            match Dispatcher::start(name, *threads, self.throughput, activity.clone()) {
                Ok(dispatcher) => dispatchers.push(dispatcher),
                Err(err) => {
                    for started in &dispatchers {
                        started.stop_workers();
                        for handle in started.take_threads() {
                            let _ = handle.join();
                        }
                    }
                    return Err(BuildError::ThreadSpawn {
                        thread: format!("cellrt-{name}"),
                        reason: err.to_string(),
                    });
                }
            }
        }
        let settings = Settings {
            default_capacity: self.default_capacity,
            send_timeout: self.send_timeout,
            quiet_panics: self.quiet_panics,
            dead_letter_capacity: self.dead_letter_capacity,
            threadless: self.threadless,
            on_escalation: self.on_escalation.clone(),
            #[cfg(feature = "observe")]
            observation: self.observation.clone(),
            #[cfg(feature = "storage")]
            storage,
        };
        tracing::debug!(
            dispatchers = ?pools,
            throughput = self.throughput,
            default_capacity = self.default_capacity,
            "runtime started"
        );
        let shared = RuntimeShared::new(
            settings,
            dispatchers,
            groups,
            #[cfg(feature = "observe")]
            observer,
            activity,
        );
        #[cfg(feature = "observe")]
        shared.start_analysis();
        Ok(Runtime::from_shared(shared))
    }
}
