package ai.longrwkv.core.backend.cpu;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.IntConsumer;
import java.util.function.Supplier;

/**
 * The CPU backend's threads: the calling thread plus {@code threads - 1} workers that run the tasks of one parallel
 * loop at a time (every parallel op of the backend and the blocks of its matrix products).
 *
 * <p>Why not the common fork-join pool: its idle workers park at once, and waking a parked thread on the 2-core dev VM
 * took long enough that the backend's parallel ops gained nothing from the second core (the tiny L4-C128 model's
 * training step measured the same with the common pool's parallelism at 1 and at 0). A step is thousands of short
 * loops with short gaps between them, so a worker here keeps polling for the next loop for {@link #SPIN_NANOS}
 * (busy, then yielding the core to any other runnable thread), and parks only after that.
 *
 * <p>Tasks are handed out in index order from a shared counter; which thread runs a task never changes what it
 * computes (tasks write disjoint outputs, partial sums are combined by the caller in task order), so a loop whose task
 * count does not depend on the thread count gives the same bits on any number of threads (the backend's elementwise,
 * row-wise and WKV ops: CpuThreadIndependenceTest). Products are cut by the thread count ({@link Sgemm}), so a whole
 * training run is reproducible for a given thread count. A loop started from inside a task, or while another thread's
 * loop holds the pool, runs its tasks on the calling thread.
 */
final class CpuPool {
    /**
     * How long an idle worker keeps polling before it parks: the first 50 us busy, then yielding, 0.5 ms in all (short,
     * so that runs sharing the cores, such as the demo's two trainings, lose little to it).
     */
    static final long SPIN_NANOS = 500_000L, BUSY_NANOS = 50_000L;

    private static volatile CpuPool current = new CpuPool(Integer.getInteger("longrwkv.cpu.threads",
            Runtime.getRuntime().availableProcessors()));

    private static final ThreadLocal<Boolean> IN_TASK = ThreadLocal.withInitial(() -> false);

    private final int threads;
    private final Worker[] workers;
    private final ReentrantLock submit = new ReentrantLock();
    private volatile Loop loop;
    private volatile boolean stopped;

    private static final class Loop {
        final int tasks;
        final IntConsumer body;
        final AtomicInteger next = new AtomicInteger(), done = new AtomicInteger();
        volatile Throwable error;

        Loop(int tasks, IntConsumer body) {
            this.tasks = tasks;
            this.body = body;
        }

        /** Runs tasks from the shared counter until none is left. */
        void work() {
            IN_TASK.set(true);
            try {
                for (int i; (i = next.getAndIncrement()) < tasks; ) {
                    try {
                        body.accept(i);
                    } catch (Throwable t) {
                        synchronized (this) {
                            if (error == null) error = t;
                            else if (error != t) error.addSuppressed(t);
                        }
                    }
                    done.incrementAndGet();
                }
            } finally {
                IN_TASK.set(false);
            }
        }
    }

    private final class Worker extends Thread {
        volatile boolean parked;

        Worker(int i) {
            super("longrwkv-cpu-" + i);
            setDaemon(true);
        }

        @Override public void run() {
            Loop last = null;
            long idleSince = System.nanoTime();
            while (!stopped) {
                Loop l = loop;
                if (l != null && l != last) {
                    l.work();
                    last = l;
                    idleSince = System.nanoTime();
                    continue;
                }
                long idle = System.nanoTime() - idleSince;
                if (idle < BUSY_NANOS) {
                    Thread.onSpinWait();
                } else if (idle < SPIN_NANOS) {
                    Thread.yield();
                } else {
                    parked = true;
                    Loop again = loop;
                    if (again == null || again == last) LockSupport.park(this);
                    parked = false;
                    idleSince = System.nanoTime();
                }
            }
        }
    }

    private CpuPool(int threads) {
        this.threads = Math.max(1, threads);
        workers = new Worker[this.threads - 1];
        for (int i = 0; i < workers.length; i++) {
            workers[i] = new Worker(i + 1);
            workers[i].start();
        }
    }

    /** Threads a loop runs on (the caller included). */
    static int threads() {
        return current.threads;
    }

    /** Runs body(i) for every i in [0, tasks) on the backend's threads; returns when all have run. */
    static void parallelFor(int tasks, IntConsumer body) {
        current.run(tasks, body);
    }

    /**
     * Runs {@code work} with the backend's loops on a pool of {@code threads} threads (tests: thread independence).
     * Not for concurrent use: it swaps the one pool every backend uses.
     */
    static synchronized <T> T withThreads(int threads, Supplier<T> work) {
        CpuPool before = current, pool = new CpuPool(threads);
        current = pool;
        try {
            return work.get();
        } finally {
            current = before;
            pool.shutdown();
        }
    }

    private void shutdown() {
        stopped = true;
        for (Worker w : workers) LockSupport.unpark(w);
    }

    private void run(int tasks, IntConsumer body) {
        if (tasks <= 0) return;
        if (tasks == 1 || workers.length == 0 || IN_TASK.get() || !submit.tryLock()) {
            for (int i = 0; i < tasks; i++) body.accept(i);
            return;
        }
        Loop l;
        try {
            l = new Loop(tasks, body);
            loop = l;
            for (Worker w : workers) if (w.parked) LockSupport.unpark(w);
            l.work();
            for (int spins = 0; l.done.get() < tasks; spins++) {
                if (spins < 1000) Thread.onSpinWait();
                else Thread.yield();
            }
        } finally {
            loop = null;
            submit.unlock();
        }
        Throwable e = l.error;
        if (e instanceof RuntimeException re) throw re;
        if (e instanceof Error err) throw err;
        if (e != null) throw new IllegalStateException(e);
    }
}
