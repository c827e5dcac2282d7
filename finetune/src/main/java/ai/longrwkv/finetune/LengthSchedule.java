package ai.longrwkv.finetune;

import ai.longrwkv.datasets.Lengths;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * --ctx-len as a length curriculum: {@code 512:2000,1k/2k:1000,2k} trains sequences of 512 tokens for steps 1..2000,
 * then for 1000 steps each sequence is 1k or 2k tokens (drawn per sequence: lengths mixed in one phase), then 2k to the
 * end. A plain number is one phase for the whole run. The last phase's step count may be left out (it runs to the
 * end); a run longer than the schedule stays in the last phase.
 *
 * <p>What a length means depends on the sampling: windows (and stream) cut sequences of exactly that length; documents
 * draws only documents of at most that length (mixed lengths in one phase come from the data then, e.g.
 * {@code data synth --lengths 256,512,1k,2k}).
 */
public final class LengthSchedule {
    /** One phase: its lengths (one drawn per sequence) and its number of steps (the last phase: Long.MAX_VALUE). */
    public record Phase(int[] lengths, long steps) {
        int longest() { return Arrays.stream(lengths).max().orElseThrow(); }
    }

    private final String spec;
    private final List<Phase> phases;

    private LengthSchedule(String spec, List<Phase> phases) {
        this.spec = spec;
        this.phases = List.copyOf(phases);
    }

    /** A single length for the whole run. */
    public static LengthSchedule constant(int length) {
        if (length < 1) throw new IllegalArgumentException("--ctx-len must be >= 1, got " + length);
        return new LengthSchedule(Integer.toString(length), List.of(new Phase(new int[]{length}, Long.MAX_VALUE)));
    }

    public static LengthSchedule parse(String spec) {
        if (spec == null || spec.isBlank()) throw new IllegalArgumentException("--ctx-len is empty: expected a length (2048) or a schedule (512:2000,2048)");
        String[] parts = spec.strip().split(",", -1);
        List<Phase> phases = new ArrayList<>();
        for (int i = 0; i < parts.length; i++) {
            String p = parts[i].strip();
            boolean last = i == parts.length - 1;
            String lengthPart = p;
            long steps = Long.MAX_VALUE;
            int colon = p.indexOf(':');
            if (colon >= 0) {
                lengthPart = p.substring(0, colon).strip();
                String s = p.substring(colon + 1).strip();
                try {
                    steps = Long.parseLong(s);
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("--ctx-len " + spec + ": phase '" + p + "' has steps '" + s + "', expected a whole number (LENGTH:STEPS)");
                }
                if (steps < 1) throw new IllegalArgumentException("--ctx-len " + spec + ": phase '" + p + "' must last at least 1 step, got " + steps);
            } else if (!last) {
                throw new IllegalArgumentException("--ctx-len " + spec + ": phase '" + p + "' needs its number of steps (LENGTH:STEPS); only the last phase may leave it out");
            }
            String[] alts = lengthPart.split("/", -1);
            int[] lengths = new int[alts.length];
            for (int j = 0; j < alts.length; j++) {
                lengths[j] = Lengths.parse("--ctx-len", alts[j].strip());
                if (lengths[j] < 1) throw new IllegalArgumentException("--ctx-len must be >= 1, got " + lengths[j]);
            }
            phases.add(new Phase(lengths, steps));
        }
        return new LengthSchedule(spec.strip(), phases);
    }

    public List<Phase> phases() { return phases; }

    /** Whether the run has more than one length. */
    public boolean varies() {
        return phases.size() > 1 || phases.get(0).lengths().length > 1;
    }

    /** The longest length of any phase: what memory and documents must fit. */
    public int longest() {
        return phases.stream().mapToInt(Phase::longest).max().orElseThrow();
    }

    /** Every length of the schedule (for checks against the chunk length). */
    public int[] allLengths() {
        return phases.stream().flatMapToInt(ph -> Arrays.stream(ph.lengths())).distinct().sorted().toArray();
    }

    /** The phase of 0-based optimizer step {@code step}. */
    public int phaseOf(long step) {
        long start = 0;
        for (int i = 0; i < phases.size(); i++) {
            long n = phases.get(i).steps();
            if (n == Long.MAX_VALUE || step < start + n) return i;
            start += n;
        }
        return phases.size() - 1;   // past the schedule: its last phase goes on
    }

    /** The length of training sequence {@code index} (step = index / sequencesPerStep); a mixed phase draws it from (seed, index). */
    public int lengthOf(long index, int sequencesPerStep, long seed) {
        Phase ph = phases.get(phaseOf(index / sequencesPerStep));
        if (ph.lengths().length == 1) return ph.lengths()[0];
        return ph.lengths()[new SplittableRandom(seed * 0x632BE59BD9B4E019L + index).nextInt(ph.lengths().length)];
    }

    /** The longest length allowed for sequence {@code index}: its phase's longest. */
    public int limitOf(long index, int sequencesPerStep) {
        return phases.get(phaseOf(index / sequencesPerStep)).longest();
    }

    /** The spec as given (part of the data fingerprint, so that a resume with another schedule is refused). */
    @Override
    public String toString() { return spec; }
}
