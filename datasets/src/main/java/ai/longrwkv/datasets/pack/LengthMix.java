package ai.longrwkv.datasets.pack;

import ai.longrwkv.datasets.Lengths;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;

/**
 * Sequence lengths and the share of tokens each gets, e.g. "4096:0.25,16384:0.25,65536:0.5". Shares are of tokens
 * (not of sequences). Shares that sum to less than 1 leave the rest to the --seq-len sequences.
 */
public record LengthMix(List<Share> shares) {
    public record Share(int length, double fraction) { }

    public LengthMix {
        shares = List.copyOf(shares);
    }

    /** Every token in sequences of seqLen. */
    public static LengthMix single(int seqLen) {
        return new LengthMix(List.of(new Share(seqLen, 1.0)));
    }

    /** Parses the --mix option; null or blank means {@link #single}. */
    public static LengthMix parse(String mix, int seqLen) {
        if (mix == null || mix.isBlank()) return single(seqLen);
        List<Share> out = new ArrayList<>();
        double sum = 0;
        for (String part : mix.split(",")) {
            String[] kv = part.strip().split(":");
            if (kv.length != 2) throw new IllegalArgumentException("--mix: '" + part + "' should be LENGTH:FRACTION, e.g. 4096:0.25");
            int length = Lengths.parse("--mix", kv[0]);
            double fraction;
            try {
                fraction = Double.parseDouble(kv[1].strip());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("--mix: '" + kv[1] + "' in '" + part + "' is not a number");
            }
            if (!(fraction > 0) || fraction > 1) throw new IllegalArgumentException("--mix: fraction " + kv[1] + " in '" + part + "' must be above 0 and at most 1");
            if (length > seqLen) throw new IllegalArgumentException("--mix: length " + length + " is longer than --seq-len " + seqLen);
            if (length < 2) throw new IllegalArgumentException("--mix: length " + length + " is too short (at least 2 tokens)");
            for (Share s : out) if (s.length() == length) throw new IllegalArgumentException("--mix: length " + length + " appears twice");
            out.add(new Share(length, fraction));
            sum += fraction;
        }
        if (sum > 1 + 1e-9) throw new IllegalArgumentException(String.format(Locale.ROOT, "--mix: the fractions add up to %.4f, more than 1", sum));
        double rest = 1 - sum;
        if (rest > 1e-9) {
            boolean merged = false;
            for (int i = 0; i < out.size(); i++) {
                if (out.get(i).length() == seqLen) {
                    out.set(i, new Share(seqLen, out.get(i).fraction() + rest));
                    merged = true;
                }
            }
            if (!merged) out.add(new Share(seqLen, rest));
        }
        out.sort(Comparator.comparingInt(Share::length));
        return new LengthMix(out);
    }

    public int longest() {
        return shares.get(shares.size() - 1).length();
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder();
        for (Share s : shares) {
            if (sb.length() > 0) sb.append(',');
            sb.append(s.length()).append(':').append(String.format(Locale.ROOT, "%.4g", s.fraction()));
        }
        return sb.toString();
    }
}
