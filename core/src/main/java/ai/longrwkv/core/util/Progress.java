package ai.longrwkv.core.util;

import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarConsumer;
import me.tongfei.progressbar.ProgressBarRenderer;
import me.tongfei.progressbar.ProgressState;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.function.LongSupplier;

/**
 * Progress bars for long work, one style for the whole tool, on stderr (stdout stays clean for results), with
 * rate and ETA.
 * <ul>
 *   <li>On a terminal the bar redraws in place ({@code \r}).</li>
 *   <li>When stderr is a file or a pipe there are no redraws: a start line, a few plain lines while the work goes on
 *       (after 10 s, 30 s, 1 min, 2 min, 5 min, then every 5 min) and one final line, so that logs stay readable.</li>
 *   <li>{@code LONGRWKV_NO_PROGRESS=1} (or {@code true}, {@code yes}, {@code on}) turns them off; {@code 0},
 *       {@code false}, {@code no} or empty leave them on. So does the system property {@code longrwkv.noProgress}.</li>
 * </ul>
 * Counts: {@link #bar} for steps, samples, tokens ...; {@link #bytes} for bytes, shown in B, KB, MB or GB, whichever
 * fits the total (10^3 multiples).
 */
public final class Progress {
    private Progress() { }

    /** The environment variable that turns progress bars off. */
    public static final String NO_PROGRESS_ENV = "LONGRWKV_NO_PROGRESS";

    public static boolean enabled() {
        return !isTrue(System.getenv(NO_PROGRESS_ENV)) && !Boolean.getBoolean("longrwkv.noProgress");
    }

    /** 1, true, yes, on (any case, spaces ignored) are true; anything else, empty or unset, is false. */
    static boolean isTrue(String value) {
        if (value == null) return false;
        return switch (value.strip().toLowerCase(Locale.ROOT)) {
            case "1", "true", "yes", "on" -> true;
            default -> false;
        };
    }

    /**
     * A bar over {@code total} units (-1 if unknown), e.g. {@code bar("train", steps, "step")}; advance it with
     * {@code stepBy} / {@code stepTo} and close it when done (try-with-resources). When progress is off, the bar
     * still counts but prints nothing.
     */
    public static ProgressBar bar(String task, long total, String unit) {
        return build(task, total, new Units(unit, 1, false), System.err, stderrIsTerminal(), enabled(), System::nanoTime);
    }

    /** A bar over {@code totalBytes} bytes, advanced in bytes, shown in the unit that fits the total (22 KB, 1.4 GB). */
    public static ProgressBar bytes(String task, long totalBytes) {
        return build(task, totalBytes, Units.bytes(totalBytes), System.err, stderrIsTerminal(), enabled(), System::nanoTime);
    }

    /** The general form (tests): where to print, whether that is a terminal, whether to print at all. */
    static ProgressBar build(String task, long total, Units units, PrintStream err, boolean terminal, boolean on, LongSupplier clock) {
        ProgressBarConsumer consumer = !on ? new Silent() : terminal ? new Redraw(err) : new Log(err, clock);
        return new Bar(task, total, terminal ? 500 : 1000, terminal, new Renderer(units), consumer);
    }

    /**
     * The library's bar, closed so that the last line is always out when close() returns: the library closes its
     * consumer from its update thread, and may render again after that.
     */
    static final class Bar extends ProgressBar {
        private final ProgressBarConsumer consumer;
        private final Renderer renderer;

        Bar(String task, long total, int intervalMillis, boolean continuous, Renderer renderer, ProgressBarConsumer consumer) {
            super(task, total, intervalMillis, continuous, false, 0, Duration.ZERO, renderer, consumer);
            this.consumer = consumer;
            this.renderer = renderer;
        }

        @Override
        public void close() {
            super.close();
            if (consumer instanceof Redraw r) r.finish(renderer.last);
            else if (consumer instanceof Log l) l.finish(renderer.last);
        }
    }

    /** Whether stderr is a terminal: /proc/self/fd/2 on Linux; elsewhere, whether the JVM has a console. */
    static boolean stderrIsTerminal() {
        try {
            Path fd = Path.of("/proc/self/fd/2");
            if (Files.exists(fd, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
                String target = Files.readSymbolicLink(fd).toString();
                return target.startsWith("/dev/pts/") || target.startsWith("/dev/tty") || target.equals("/dev/console");
            }
        } catch (java.io.IOException | UnsupportedOperationException | SecurityException e) {
            // fall through
        }
        return System.console() != null;
    }

    /** How counts are shown: a unit name and the divisor from counted units to shown units. */
    record Units(String name, long divisor, boolean fractional) {
        static Units bytes(long total) {
            if (total >= 1_000_000_000L) return new Units("GB", 1_000_000_000L, true);
            if (total >= 1_000_000L) return new Units("MB", 1_000_000L, true);
            if (total >= 1_000L) return new Units("KB", 1_000L, true);
            return new Units("B", 1, false);
        }

        String amount(long units, long max) {
            if (divisor == 1 && !fractional) return String.format(Locale.ROOT, "%,d", units);
            double v = (double) units / divisor, m = (double) Math.max(max, units) / divisor;
            return String.format(Locale.ROOT, m >= 10 ? "%,.0f" : "%.1f", v);
        }
    }

    /** {@code task  42% [=====>      ] 1,234/3,000 step  0:01:02, 20.1 step/s, ETA 0:01:28} */
    static final class Renderer implements ProgressBarRenderer {
        private final Units units;
        volatile String last;

        Renderer(Units units) {
            this.units = units;
        }

        @Override
        public String render(ProgressState p, int maxLength) {
            long cur = p.getCurrent(), max = p.getMax(), start = p.getStart();
            boolean known = !p.isIndefinite() && max > 0;
            Duration elapsed = p.getElapsedAfterStart();
            double secs = elapsed.toNanos() / 1e9;
            StringBuilder sb = new StringBuilder(p.getTaskName());
            if (known) {
                double frac = Math.min(1, Math.max(0, (double) cur / max));
                int width = 20, full = (int) Math.floor(frac * width);
                sb.append(String.format(Locale.ROOT, " %3d%% [", (int) Math.floor(frac * 100)));
                for (int i = 0; i < width; i++) sb.append(i < full ? '=' : i == full ? '>' : ' ');
                sb.append("] ").append(units.amount(cur, max)).append('/').append(units.amount(max, max));
            } else {
                sb.append(' ').append(units.amount(cur, cur));
            }
            sb.append(' ').append(units.name()).append("  ").append(hms(elapsed));
            long done = cur - start;
            if (done > 0 && secs >= 0.05) {
                double rate = done / secs / units.divisor();
                sb.append(", ").append(rate >= 100 ? String.format(Locale.ROOT, "%,.0f", rate)
                        : rate >= 10 ? String.format(Locale.ROOT, "%.1f", rate) : String.format(Locale.ROOT, "%.2f", rate))
                        .append(' ').append(units.name()).append("/s");
                if (known && cur < max) {
                    long eta = (long) ((max - cur) * (secs / done));
                    sb.append(", ETA ").append(hms(Duration.ofSeconds(eta)));
                }
            }
            String extra = p.getExtraMessage();
            if (extra != null && !extra.isBlank()) sb.append("  ").append(extra.strip());
            String line = sb.length() > maxLength ? sb.substring(0, maxLength) : sb.toString();
            last = line;
            return line;
        }
    }

    /** Off: counts, prints nothing. */
    static final class Silent implements ProgressBarConsumer {
        @Override public int getMaxRenderedLength() { return 200; }
        @Override public void accept(String rendered) { }
        @Override public void close() { }
    }

    /** A terminal: the line is redrawn in place, and ends with a newline when the bar closes. */
    static final class Redraw implements ProgressBarConsumer {
        private final PrintStream err;
        private int lastLength;
        private String lastDrawn;
        private boolean drawn, closed;

        Redraw(PrintStream err) {
            this.err = err;
        }

        @Override public int getMaxRenderedLength() { return 160; }

        @Override
        public synchronized void accept(String rendered) {
            if (closed) return;   // the library may render once more after closing
            StringBuilder sb = new StringBuilder("\r").append(rendered);
            for (int i = rendered.length(); i < lastLength; i++) sb.append(' ');
            lastLength = rendered.length();
            lastDrawn = rendered;
            err.print(sb);
            err.flush();
            drawn = true;
        }

        /** The library's close: the bar's own close() finishes the line. */
        @Override
        public void close() { }

        /** The final state drawn once more if it was not, then the newline. */
        synchronized void finish(String finalLine) {
            if (closed) return;
            if (finalLine != null && !finalLine.equals(lastDrawn)) accept(finalLine);
            closed = true;
            if (drawn) err.println();
            err.flush();
        }
    }

    /** A file or a pipe: whole lines only; the first, a few while it runs, and the last. */
    static final class Log implements ProgressBarConsumer {
        static final long[] AFTER_SECONDS = {10, 30, 60, 120, 300};
        static final long EVERY_SECONDS_LATER = 300;
        private final PrintStream err;
        private final LongSupplier clock;
        private final long startNanos;
        private String last, printed;
        private int periodic;
        private boolean closed;

        Log(PrintStream err, LongSupplier clock) {
            this.err = err;
            this.clock = clock;
            this.startNanos = clock.getAsLong();
        }

        @Override public int getMaxRenderedLength() { return 200; }

        private long nextDueSeconds() {
            return periodic < AFTER_SECONDS.length ? AFTER_SECONDS[periodic]
                    : AFTER_SECONDS[AFTER_SECONDS.length - 1] + (periodic - AFTER_SECONDS.length + 1) * EVERY_SECONDS_LATER;
        }

        @Override
        public synchronized void accept(String rendered) {
            if (closed) return;
            last = rendered;
            if (printed == null) {
                print(rendered);
                return;
            }
            long secs = (clock.getAsLong() - startNanos) / 1_000_000_000L;
            if (secs >= nextDueSeconds()) {
                while (secs >= nextDueSeconds()) periodic++;
                if (!rendered.equals(printed)) print(rendered);
            }
        }

        private void print(String line) {
            err.println(line);
            err.flush();
            printed = line;
        }

        /** The library's close: the bar's own close() prints the final line. */
        @Override
        public void close() { }

        /** The final line, unless it is the one printed last. */
        synchronized void finish(String finalLine) {
            if (closed) return;
            closed = true;
            if (finalLine != null) last = finalLine;
            if (last != null && !last.equals(printed)) print(last);
        }
    }

    /** Formats seconds as h:mm:ss. */
    public static String hms(Duration d) {
        long s = d.getSeconds();
        return String.format("%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60);
    }
}
