package ai.longrwkv.eval;

import ai.longrwkv.datasets.Lengths;

import java.util.ArrayList;
import java.util.List;

/**
 * The length and depth lists of the retrieval evals. Besides plain lists, "a,b,...,z" continues a progression up to
 * z: arithmetic when the given terms step evenly ("0,10,...,100"), geometric when they grow by a constant ratio
 * ("1k,2k,4k,...,128k").
 */
public final class Grid {
    private Grid() { }

    /** Token counts ("4096", "4k", "1k,2k,4k,...,128k"), increasing order kept as given, no duplicates. */
    public static List<Integer> lengths(String option, String text) {
        List<Double> values = expand(option, text, s -> (double) Lengths.parse(option, s));
        List<Integer> out = new ArrayList<>();
        for (double v : values) {
            int n = (int) Math.round(v);
            if (out.contains(n)) throw new IllegalArgumentException(option + ": " + Lengths.format(n) + " is listed twice");
            out.add(n);
        }
        return out;
    }

    /** Depths in percent of the filler, 0..100 ("0,10,...,100"). */
    public static double[] depthsPercent(String option, String text) {
        List<Double> values = expand(option, text, s -> {
            try {
                return Double.parseDouble(s);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(option + ": '" + s + "' is not a number (depths are percent, 0..100)");
            }
        });
        double[] out = new double[values.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = values.get(i);
            if (!(out[i] >= 0 && out[i] <= 100)) throw new IllegalArgumentException(option + ": " + out[i] + " is not between 0 and 100 (percent)");
            for (int j = 0; j < i; j++) if (out[j] == out[i]) throw new IllegalArgumentException(option + ": " + out[i] + " is listed twice");
        }
        return out;
    }

    private interface Parser {
        double parse(String s);
    }

    private static List<Double> expand(String option, String text, Parser parser) {
        if (text == null || text.isBlank()) throw new IllegalArgumentException(option + " is empty");
        String[] parts = text.split(",");
        List<Double> out = new ArrayList<>();
        for (int i = 0; i < parts.length; i++) {
            String p = parts[i].strip();
            if (p.isEmpty()) throw new IllegalArgumentException(option + ": empty entry in '" + text + "'");
            if (!p.equals("...")) {
                out.add(parser.parse(p));
                continue;
            }
            if (out.size() < 2 || i + 1 >= parts.length) {
                throw new IllegalArgumentException(option + ": '...' needs two values before it and one after, as in 1k,2k,4k,...,128k");
            }
            double a = out.get(out.size() - 2), b = out.get(out.size() - 1);
            double end = parser.parse(parts[++i].strip());
            boolean geometric = out.size() >= 3 && a > 0 && Math.abs(b / a - a / out.get(out.size() - 3)) < 1e-9
                    && Math.abs((b - a) - (a - out.get(out.size() - 3))) > 1e-9;
            if (!(b > a) || !(end >= b)) throw new IllegalArgumentException(option + ": '" + text + "' does not increase to its end");
            for (double v = geometric ? b * (b / a) : b + (b - a); v <= end * (1 + 1e-9); v = geometric ? v * (b / a) : v + (b - a)) {
                out.add(v);
            }
            if (Math.abs(out.get(out.size() - 1) - end) > 1e-9 * Math.max(1, end)) {
                throw new IllegalArgumentException(option + ": the progression in '" + text + "' does not reach " + parts[i].strip());
            }
        }
        return out;
    }
}
