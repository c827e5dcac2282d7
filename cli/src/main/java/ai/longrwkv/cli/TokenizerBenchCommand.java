package ai.longrwkv.cli;

import ai.longrwkv.core.tokenizer.WorldTokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.ByteArrayOutputStream;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.Random;
import java.util.concurrent.Callable;

/** World tokenizer speed on generated mixed-language text (ChatRWKV's Python tokenizers do about 1-2 MB/s). */
@Command(name = "tokenizer", mixinStandardHelpOptions = true,
        description = "World tokenizer encode and decode speed on one thread. The text is deterministic and mixed-language "
                + "(English, code, Chinese, Japanese, Russian, emoji, numbers). MB = 10^6 bytes of UTF-8.")
final class TokenizerBenchCommand implements Callable<Integer> {
    @Option(names = "--tokenizer", paramLabel = "world:PATH",
            description = "The World tokenizer, as elsewhere: world:PATH with PATH = rwkv_vocab_v20230424.txt.")
    String tokenizer;

    /** The old spelling: the vocab file alone. */
    @Option(names = "--vocab", hidden = true, paramLabel = "PATH", description = "Same as --tokenizer world:PATH.")
    Path vocab;

    @Option(names = "--mb", defaultValue = "50", description = "Size of the generated text in MB (default: ${DEFAULT-VALUE}).")
    double mb;

    @Option(names = "--reps", defaultValue = "5", description = "Timed repetitions; the median is reported (default: ${DEFAULT-VALUE}).")
    int reps;

    /** The vocab file of --tokenizer world:PATH or of the old --vocab PATH (exactly one of them). */
    static Path vocabFile(String tokenizerSpec, Path vocab) {
        if (tokenizerSpec != null && vocab != null) {
            throw new IllegalArgumentException("give --tokenizer world:PATH or the older --vocab PATH, not both");
        }
        if (vocab != null) return vocab;
        if (tokenizerSpec == null) {
            throw new IllegalArgumentException("give --tokenizer world:PATH (PATH = rwkv_vocab_v20230424.txt)");
        }
        String s = tokenizerSpec.strip();
        if (!s.startsWith("world:") || s.length() == "world:".length()) {
            throw new IllegalArgumentException("--tokenizer must be world:PATH (this benchmark measures the World tokenizer), got '"
                    + tokenizerSpec + "'");
        }
        return Path.of(s.substring("world:".length()));
    }

    /** Fixed so that every run (and every machine) measures the same text. */
    static final long SEED = 20230424L;

    @Override
    public Integer call() {
        if (mb <= 0 || mb > 1500) throw new IllegalArgumentException("--mb must be above 0 and at most 1500, got " + mb);
        if (reps < 1) throw new IllegalArgumentException("--reps must be at least 1, got " + reps);
        Path vocabFile = vocabFile(tokenizer, vocab);
        long t0 = System.nanoTime();
        WorldTokenizer tokenizer = WorldTokenizer.load(vocabFile);
        System.out.printf("vocab %s: %d tokens, loaded in %.0f ms%n", vocabFile, tokenizer.tokenCount(), (System.nanoTime() - t0) / 1e6);

        byte[] text = mixedText(new Random(SEED), (int) (mb * 1e6));
        double megabytes = text.length / 1e6;
        // Untimed warm-up: the JIT compiles the loops, and the heap grows to hold the id and byte arrays of a full run.
        byte[] warmup = Arrays.copyOf(text, Math.min(text.length, 4_000_000));
        for (int i = 0; i < 3; i++) tokenizer.decode(tokenizer.encode(warmup));
        tokenizer.decode(tokenizer.encode(text));

        // Wall time is what a user sees; thread CPU time also shows the speed when other processes share the cores.
        ThreadMXBean threads = ManagementFactory.getThreadMXBean();
        boolean cpuTime = threads.isCurrentThreadCpuTimeSupported();
        double[] encodeMBs = new double[reps], tokensPerSecond = new double[reps], decodeMBs = new double[reps];
        double[] encodeCpuMBs = new double[reps];
        int[] ids = null;
        for (int r = 0; r < reps; r++) {
            long cpuStart = cpuTime ? threads.getCurrentThreadCpuTime() : 0;
            long start = System.nanoTime();
            ids = tokenizer.encode(text);
            double seconds = (System.nanoTime() - start) / 1e9;
            double cpuSeconds = cpuTime ? (threads.getCurrentThreadCpuTime() - cpuStart) / 1e9 : seconds;
            encodeMBs[r] = megabytes / seconds;
            encodeCpuMBs[r] = megabytes / cpuSeconds;
            tokensPerSecond[r] = ids.length / seconds;

            start = System.nanoTime();
            byte[] back = tokenizer.decode(ids);
            seconds = (System.nanoTime() - start) / 1e9;
            decodeMBs[r] = back.length / 1e6 / seconds;
            if (!Arrays.equals(back, text)) throw new IllegalStateException("decode(encode(text)) differs from the text");
            System.out.printf("  rep %d: encode %.1f MB/s (%.2f M tokens/s; %.1f MB per CPU second), decode %.1f MB/s%n",
                    r, encodeMBs[r], tokensPerSecond[r] / 1e6, encodeCpuMBs[r], decodeMBs[r]);
        }
        System.out.printf("text: %.1f MB mixed-language (seed %d), %,d tokens, %.2f bytes/token; round trip exact%n",
                megabytes, SEED, ids.length, (double) text.length / ids.length);
        System.out.printf("median encode %.1f MB/s, %.2f M tokens/s (one thread; %.1f MB per CPU second); median decode %.1f MB/s%n",
                BenchCommand.median(encodeMBs), BenchCommand.median(tokensPerSecond) / 1e6, BenchCommand.median(encodeCpuMBs),
                BenchCommand.median(decodeMBs));
        return 0;
    }

    private static final String[] ENGLISH = ("the of and to in is that it was for on are as with his they at be this from have "
            + "or by one had not but what all were when we there can an your which their said if do will each about how up "
            + "out them then she many some so these would other into has more her two like him see time could no make than "
            + "first been its who now people my made over did down only way find use may water long little very after words "
            + "called just where most know model training context memory state token language network gradient").split(" ");
    private static final String[] CHINESE = ("我们 中国 时间 发展 问题 经济 技术 研究 人工智能 模型 数据 学习 社会 国家 工作 "
            + "生活 世界 历史 文化 科学 语言 计算机 网络 训练 今天 天气 非常 可以 因为 所以 但是 已经 如果 一个 这个 没有 什么 "
            + "自己 知道 时候 北京 上海 长城 长江 熊猫 电脑 手机 朋友 老师 学生 医院 银行").split(" ");
    private static final String[] JAPANESE = ("今日 は 天気 が いい です 私 の 日本語 を 勉強 して います 東京 大阪 "
            + "コンピューター ソフトウェア 開発 言語 モデル 学習 データ と に で から まで ありがとう ございます 桜 富士山 "
            + "新幹線 ラーメン 寿司 した ません でした ください 本当 に 面白い 時間 世界").split(" ");
    private static final String[] RUSSIAN = ("и в не на я быть он с что а по это она этот к но они мы как из у который "
            + "то за свой весь год от так о для ты же всё тот мочь вы человек такой его сказать только или ещё бы себя "
            + "один как уже до время если сам когда другой вот говорить наш мой знать стать при чтобы дело жизнь "
            + "Москва Россия язык модель обучение память").split(" ");
    private static final String[] EMOJI = {"😀", "😂", "🥲", "👍", "👍🏽", "❤️", "🎉", "🚀", "🔥", "✨", "🤖", "🐍", "☕",
            "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇯🇵", "🇺🇦", "🙏", "💯", "🤔", "😅", "🌍", "📈", "✅"};
    private static final String[] IDENTIFIERS = {"state", "tokens", "logits", "hidden", "result", "count", "buffer", "index",
            "layer", "weights", "chunkLen", "headSize", "x", "y", "i", "j", "total", "config", "value", "grad"};

    /** Deterministic text of at least minBytes UTF-8 bytes, paragraph by paragraph in several languages and code. */
    static byte[] mixedText(Random rnd, int minBytes) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(minBytes + 4096);
        StringBuilder p = new StringBuilder();
        while (out.size() < minBytes) {
            p.setLength(0);
            int kind = rnd.nextInt(20);
            if (kind < 6) english(rnd, p);
            else if (kind < 10) code(rnd, p);
            else if (kind < 13) words(rnd, p, CHINESE, "", "，", "。");
            else if (kind < 15) words(rnd, p, JAPANESE, "", "、", "。");
            else if (kind < 17) words(rnd, p, RUSSIAN, " ", ", ", ". ");
            else if (kind < 19) numbers(rnd, p);
            else emoji(rnd, p);
            p.append(rnd.nextInt(4) == 0 ? "\n\n" : "\n");
            out.writeBytes(p.toString().getBytes(StandardCharsets.UTF_8));
        }
        return out.toByteArray();
    }

    private static void english(Random rnd, StringBuilder p) {
        for (int s = 1 + rnd.nextInt(5); s > 0; s--) {
            int n = 5 + rnd.nextInt(15);
            for (int w = 0; w < n; w++) {
                String word = ENGLISH[rnd.nextInt(ENGLISH.length)];
                if (w == 0) word = Character.toUpperCase(word.charAt(0)) + word.substring(1);
                p.append(word);
                if (w < n - 1) p.append(rnd.nextInt(12) == 0 ? ", " : " ");
            }
            p.append(rnd.nextInt(8) == 0 ? "? " : ". ");
            if (rnd.nextInt(10) == 0) p.append(EMOJI[rnd.nextInt(EMOJI.length)]).append(' ');
        }
    }

    private static void code(Random rnd, StringBuilder p) {
        String a = IDENTIFIERS[rnd.nextInt(IDENTIFIERS.length)], b = IDENTIFIERS[rnd.nextInt(IDENTIFIERS.length)];
        int k = rnd.nextInt(1000);
        switch (rnd.nextInt(4)) {
            case 0 -> p.append("for (int i = 0; i < ").append(a).append(".length; i++) {\n    ").append(b)
                    .append("[i] += ").append(a).append("[i] * ").append(k).append(";\n}");
            case 1 -> p.append("def ").append(a).append("_fn(").append(b).append(", n=").append(k).append("):\n    return [")
                    .append(b).append(" ** 2 for _ in range(n) if _ % ").append(1 + k % 7).append(" == 0]");
            case 2 -> p.append("{\"").append(a).append("\": ").append(k).append(", \"").append(b).append("\": [")
                    .append(rnd.nextInt(100)).append(", ").append(rnd.nextDouble()).append("], \"ok\": true}");
            default -> p.append("if (").append(a).append(" != null && ").append(b).append(" >= 0x")
                    .append(Integer.toHexString(rnd.nextInt())).append(") return ").append(a).append(".get(").append(k).append(");");
        }
    }

    private static void words(Random rnd, StringBuilder p, String[] pool, String space, String comma, String stop) {
        for (int s = 1 + rnd.nextInt(4); s > 0; s--) {
            int n = 4 + rnd.nextInt(12);
            for (int w = 0; w < n; w++) {
                p.append(pool[rnd.nextInt(pool.length)]);
                if (w < n - 1) p.append(rnd.nextInt(6) == 0 ? comma : space);
            }
            p.append(stop);
        }
    }

    private static void numbers(Random rnd, StringBuilder p) {
        for (int n = 3 + rnd.nextInt(10); n > 0; n--) {
            switch (rnd.nextInt(4)) {
                case 0 -> p.append(rnd.nextInt(100000));
                case 1 -> p.append(String.format(Locale.ROOT, "%.4f", rnd.nextGaussian() * 100));
                case 2 -> p.append(String.format(Locale.ROOT, "%04d-%02d-%02d", 1990 + rnd.nextInt(40), 1 + rnd.nextInt(12), 1 + rnd.nextInt(28)));
                default -> p.append(String.format("+1-%03d-%03d-%04d", rnd.nextInt(1000), rnd.nextInt(1000), rnd.nextInt(10000)));
            }
            p.append(rnd.nextInt(3) == 0 ? ", " : " ");
        }
    }

    private static void emoji(Random rnd, StringBuilder p) {
        for (int n = 1 + rnd.nextInt(8); n > 0; n--) {
            p.append(EMOJI[rnd.nextInt(EMOJI.length)]);
            if (rnd.nextBoolean()) p.append(' ');
        }
    }
}
