package ai.longrwkv.eval;

import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;
import ai.longrwkv.core.tensor.HostTensor;
import ai.longrwkv.core.train.BpttMode;
import ai.longrwkv.core.train.ChunkedBptt;
import ai.longrwkv.core.train.TokenSequence;
import ai.longrwkv.core.util.Charts;
import ai.longrwkv.datasets.Lengths;
import ai.longrwkv.datasets.binidx.BinIdxDataset;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.LongConsumer;

/**
 * Loss versus token position: each held-out document (at least ctx-len + 1 tokens long) is run once from the initial
 * state, in chunks with the state carried, and the next-token loss at every position p = 1..ctx-len (p tokens seen)
 * is averaged over documents and then over log-spaced position buckets. A curve that keeps falling says the model
 * uses distant context; flat says it does not; rising past the training length says it fails to extrapolate.
 * Every position counts (a loss mask in the data is ignored: this is plain language-model loss).
 */
public final class PositionLoss {
    private PositionLoss() { }

    /** Position buckets [edges[i], edges[i+1]) over 1..ctxLen: about perOctave buckets per doubling. */
    public static int[] bucketEdges(int ctxLen, int perOctave) {
        if (perOctave < 1) throw new IllegalArgumentException("--buckets-per-octave must be >= 1, got " + perOctave);
        List<Integer> edges = new ArrayList<>();
        edges.add(1);
        for (int k = 1; ; k++) {
            long e = (long) Math.floor(Math.pow(2, k / (double) perOctave) + 1e-9);
            if (e > ctxLen) break;
            if (e > edges.get(edges.size() - 1)) edges.add((int) e);
        }
        edges.add(ctxLen + 1);
        return edges.stream().mapToInt(Integer::intValue).toArray();
    }

    /**
     * The first {@code maxDocs} documents of the dataset with at least ctxLen + 1 tokens, cut to ctxLen + 1 tokens
     * (ctxLen inputs, each with a target). Refuses a dataset that has none.
     */
    public static List<int[]> documents(BinIdxDataset data, int ctxLen, int maxDocs) {
        List<int[]> out = new ArrayList<>();
        int longest = 0;
        for (int d = 0; d < data.documentCount() && out.size() < maxDocs; d++) {
            int len = data.documentLength(d);
            longest = Math.max(longest, len);
            if (len >= ctxLen + 1) {
                int[] tokens = new int[ctxLen + 1];
                data.read(d, 0, tokens, 0, ctxLen + 1);
                out.add(tokens);
            }
        }
        if (out.isEmpty()) {
            throw new IllegalArgumentException(data.prefix() + " has no document of at least --ctx-len + 1 = " + (ctxLen + 1)
                    + " tokens (the longest has " + longest + "): lower --ctx-len or use longer documents");
        }
        return out;
    }

    /** Mean loss per position 1..ctxLen (index p - 1) over the documents, from the given initial state. */
    public static double[] perPosition(Rwkv5Model model, RwkvState initial, List<int[]> docs, int ctxLen, int chunkLen, LongConsumer progress) {
        double[] sum = new double[ctxLen];
        int v = model.config().vocabSize();
        for (int[] doc : docs) {
            int[] inputs = Arrays.copyOf(doc, ctxLen);
            int[] targets = Arrays.copyOfRange(doc, 1, ctxLen + 1);
            TokenSequence window = new TokenSequence(inputs, targets, ones(ctxLen));
            ChunkedBptt.Result r = ChunkedBptt.run(model, window, initial, null, new ChunkedBptt.Options(chunkLen, BpttMode.FULL, false), false,
                    (start, logits) -> accumulate(sum, start, logits, targets, v, progress));
            r.finalState().close();
        }
        for (int i = 0; i < ctxLen; i++) sum[i] /= docs.size();
        return sum;
    }

    private static float[] ones(int n) {
        float[] m = new float[n];
        Arrays.fill(m, 1f);
        return m;
    }

    private static void accumulate(double[] sum, int start, HostTensor logits, int[] targets, int v, LongConsumer progress) {
        int rows = logits.dim(0);
        float[] data = logits.data();
        for (int r = 0; r < rows; r++) sum[start + r] += RetrievalEval.nll(data, r * v, v, targets[start + r]);
        if (progress != null) progress.accept(rows);
    }

    /** Bucket means of per-position losses (index p - 1 = position p). */
    public static double[] bucketMeans(double[] perPosition, int[] edges) {
        double[] out = new double[edges.length - 1];
        for (int b = 0; b + 1 < edges.length; b++) {
            double s = 0;
            int n = 0;
            for (int p = edges[b]; p < edges[b + 1] && p <= perPosition.length; p++) {
                s += perPosition[p - 1];
                n++;
            }
            out[b] = n == 0 ? Double.NaN : s / n;
        }
        return out;
    }

    /** CSV: bucket_start,bucket_end,positions,then one loss column per curve; a log-x chart; a printed table. */
    public static void write(Path outDir, int[] edges, Map<String, double[]> curves, int docs, PrintStream out) {
        RetrievalEval.createDirectories(outDir);
        StringBuilder csv = new StringBuilder("bucket_start,bucket_end,positions");
        for (String label : curves.keySet()) csv.append(',').append(csvField(label));
        csv.append('\n');
        for (int b = 0; b + 1 < edges.length; b++) {
            csv.append(edges[b]).append(',').append(edges[b + 1] - 1).append(',').append(edges[b + 1] - edges[b]);
            for (double[] c : curves.values()) csv.append(String.format(Locale.ROOT, ",%.5f", c[b]));
            csv.append('\n');
        }
        RetrievalEval.writeAtomically(outDir.resolve("position-loss.csv"), csv.toString());

        Map<String, List<double[]>> series = new LinkedHashMap<>();
        curves.forEach((label, c) -> {
            List<double[]> points = new ArrayList<>();
            // each bucket plotted at the geometric middle of its positions
            for (int b = 0; b < c.length; b++) points.add(new double[]{Math.sqrt(edges[b] * (double) (edges[b + 1] - 1)), c[b]});
            series.put(label, points);
        });
        Charts.lines(outDir.resolve("position-loss.png"), "Loss by token position (" + docs + " documents)", "position (tokens seen)",
                "mean loss (nats)", series, true);

        if (out != null) {
            List<String> labels = new ArrayList<>(curves.keySet());
            out.printf("mean next-token loss by position over %d document%s%n", docs, docs == 1 ? "" : "s");
            StringBuilder head = new StringBuilder(String.format("%-16s", "positions"));
            for (int i = 0; i < labels.size(); i++) head.append(String.format("%12s", "[" + (i + 1) + "]"));
            out.println(head);
            for (int b = 0; b + 1 < edges.length; b++) {
                StringBuilder row = new StringBuilder(String.format("%-16s", range(edges[b], edges[b + 1] - 1)));
                for (double[] c : curves.values()) row.append(String.format(Locale.ROOT, "%12.4f", c[b]));
                out.println(row);
            }
            for (int i = 0; i < labels.size(); i++) out.println("[" + (i + 1) + "] " + labels.get(i));
            out.println("wrote " + outDir.resolve("position-loss.csv") + ", position-loss.png");
        }
    }

    private static String range(int from, int to) {
        return from == to ? Lengths.format(from) : Lengths.format(from) + "-" + Lengths.format(to);
    }

    private static String csvField(String s) {
        return s.contains(",") || s.contains("\"") ? "\"" + s.replace("\"", "\"\"") + "\"" : s;
    }
}
