package ai.longrwkv.core.util;

import me.tongfei.progressbar.ProgressBar;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Issue 13, item 4: progress bars that suit a terminal and a log file alike, and an off switch that means it. */
class ProgressTest {

    @Test
    void onlyOneTrueYesOnTurnProgressOff() {
        for (String on : new String[]{"1", "true", "TRUE", "yes", "on", " 1 "}) assertTrue(Progress.isTrue(on), on);
        for (String off : new String[]{"0", "false", "no", "", "off", "2"}) assertFalse(Progress.isTrue(off), off);
        assertFalse(Progress.isTrue(null));
    }

    @Test
    void aLogGetsAStartLineAFewPeriodicLinesAndOneFinalLineWithoutRedraws() {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        AtomicLong now = new AtomicLong();
        Progress.Log log = new Progress.Log(new PrintStream(buf, true, StandardCharsets.UTF_8), now::get);
        for (int s = 0; s <= 100; s++) {   // 100 seconds of renders, 2 per second
            now.set(s * 1_000_000_000L);
            log.accept("step " + s);
            now.set(s * 1_000_000_000L + 500_000_000L);
            log.accept("step " + s);
        }
        log.finish(null);
        log.finish("ignored after the first finish");
        String out = buf.toString(StandardCharsets.UTF_8);
        assertFalse(out.contains("\r"), out);
        assertEquals(List.of("step 0", "step 10", "step 30", "step 60", "step 100"), out.lines().toList());
    }

    @Test
    void theFinalLineIsNotRepeated() {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        AtomicLong now = new AtomicLong();
        Progress.Log log = new Progress.Log(new PrintStream(buf, true, StandardCharsets.UTF_8), now::get);
        log.accept("a");
        now.set(20_000_000_000L);
        log.accept("done");
        log.accept("done");
        log.finish("done");
        assertEquals(List.of("a", "done"), buf.toString(StandardCharsets.UTF_8).lines().toList());
    }

    static String run(long total, Progress.Units units, long step, boolean terminal) {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        PrintStream ps = new PrintStream(buf, true, StandardCharsets.UTF_8);
        try (ProgressBar bar = Progress.build("task", total, units, ps, terminal, true, System::nanoTime)) {
            for (long done = 0; done < total; done += step) bar.stepBy(Math.min(step, total - done));
        }
        return buf.toString(StandardCharsets.UTF_8);
    }

    @Test
    void aSmallInputIsShownInKilobytesAndAQuickFinishHasNoUnknownRate() {
        String out = run(22_000, Progress.Units.bytes(22_000), 1000, false);
        List<String> lines = out.lines().toList();
        String last = lines.get(lines.size() - 1);
        assertTrue(last.contains("100%") && last.contains("22/22 KB"), out);
        assertFalse(out.contains("?"), out);
        assertFalse(out.contains("\r"), out);
        assertTrue(lines.size() <= 2, "start and end only: " + out);
        assertEquals(1, lines.stream().filter(l -> l.contains("100%")).count(), out);

        assertEquals("B", Progress.Units.bytes(999).name());
        assertEquals("MB", Progress.Units.bytes(5_000_000).name());
        assertEquals("2.5", Progress.Units.bytes(5_000_000).amount(2_500_000, 5_000_000));
        assertEquals("GB", Progress.Units.bytes(3_000_000_000L).name());
        assertEquals("1,234", new Progress.Units("step", 1, false).amount(1234, 5000));
    }

    @Test
    void aTerminalGetsRedrawsAndANewlineAtTheEnd() {
        String out = run(10, new Progress.Units("step", 1, false), 1, true);
        assertTrue(out.startsWith("\r"), out.replace("\r", "<CR>").replace("\n", "<NL>"));
        assertTrue(out.endsWith("\n"), out.replace("\r", "<CR>").replace("\n", "<NL>"));
        assertTrue(out.contains("10/10 step"), out);
    }

    @Test
    void offPrintsNothing() {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        try (ProgressBar bar = Progress.build("task", 5, new Progress.Units("x", 1, false),
                new PrintStream(buf, true, StandardCharsets.UTF_8), false, false, System::nanoTime)) {
            bar.stepBy(5);
            assertEquals(5, bar.getCurrent());
        }
        assertEquals("", buf.toString(StandardCharsets.UTF_8));
    }
}
