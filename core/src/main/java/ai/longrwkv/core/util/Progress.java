package ai.longrwkv.core.util;

import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;

import java.time.Duration;

/**
 * Progress bars for long work, one style for the whole tool: on stderr (stdout stays clean for results), with rate and
 * ETA. Set LONGRWKV_NO_PROGRESS=1 (tests, logs) to turn them off.
 */
public final class Progress {
    private Progress() { }

    public static boolean enabled() {
        return System.getenv("LONGRWKV_NO_PROGRESS") == null && !Boolean.getBoolean("longrwkv.noProgress");
    }

    /**
     * A bar over {@code total} units (-1 if unknown). Close it when done (try-with-resources). When progress is off,
     * the bar still counts but prints nothing.
     */
    public static ProgressBar bar(String task, long total, String unit) {
        ProgressBarBuilder b = new ProgressBarBuilder()
                .setTaskName(task)
                .setInitialMax(total)
                .setUnit(" " + unit, 1)
                .setStyle(ProgressBarStyle.ASCII)
                .showSpeed()
                .setUpdateIntervalMillis(500)
                .setMaxRenderedLength(100);
        if (enabled()) {
            b.setConsumer(new ConsoleProgressBarConsumer(System.err));
        } else {
            b.setConsumer(new me.tongfei.progressbar.ProgressBarConsumer() {
                @Override public int getMaxRenderedLength() { return 100; }
                @Override public void accept(String rendered) { }
                @Override public void close() { }
            });
        }
        b.continuousUpdate();
        return b.build();
    }

    /** Formats seconds as h:mm:ss. */
    public static String hms(Duration d) {
        long s = d.getSeconds();
        return String.format("%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60);
    }
}
