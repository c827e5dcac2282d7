package ai.longrwkv.cli;

import ai.longrwkv.datasets.build.ChatTemplate;
import ai.longrwkv.eval.Generator;
import ai.longrwkv.eval.Prefill;
import ai.longrwkv.eval.Sampler;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;

/** `longrwkv generate`: continue a prompt. */
@Command(name = "generate", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Continue a prompt: prefill it in chunks (any length, constant memory), then sample token by token,",
                "streaming the text to stdout (only the generated text goes there; statistics go to stderr). Stops at the",
                "end-of-text token 0, at a --stop string (not printed) or after --max-new-tokens. --temperature 0 is greedy",
                "and deterministic; otherwise the same --seed gives the same text. With --template the prompt is one user",
                "message in that chat template (after an optional --system turn), the model answers as --name and stops at",
                "the end of its turn."})
final class GenerateCommand implements Callable<Integer> {
    @Mixin EvalModelOptions modelOptions;

    @Option(names = "--prompt", description = "The prompt text.") String prompt;
    @Option(names = "--prompt-file", paramLabel = "FILE", description = "Read the prompt from this UTF-8 file.") Path promptFile;
    @Option(names = "--temperature", defaultValue = "1.0", description = "Sampling temperature; 0 = greedy (default: ${DEFAULT-VALUE}).") double temperature;
    @Option(names = "--top-p", defaultValue = "0.85", description = "Nucleus sampling: keep the most likely tokens up to this probability mass (default: ${DEFAULT-VALUE}).") double topP;
    @Option(names = {"--max-new-tokens", "--max-tokens"}, defaultValue = "200", description = "Tokens to generate at most; --max-tokens is "
            + "the older spelling (default: ${DEFAULT-VALUE}).") int maxTokens;
    @Option(names = "--stop", paramLabel = "STRING", description = "Stop when the text contains this string (repeatable); it is not printed.") List<String> stops;
    @Option(names = "--seed", defaultValue = "1", description = "Sampling seed (default: ${DEFAULT-VALUE}).") long seed;
    @Option(names = "--template", paramLabel = "world|metharme|FILE", description = "Lay the prompt out as one user turn of this chat "
            + "template (as in data build --template); default: the prompt as it is.") String template;
    @Option(names = "--system", paramLabel = "TEXT", description = "With --template: the system turn before the message (a character card).") String system;
    @Option(names = "--name", paramLabel = "BOT", description = "With --template: the model's name in the turns (default: Assistant).") String botName;
    @Option(names = {"--user", "--user-name"}, paramLabel = "NAME", description = "With --template: the user's name in the turns, as data build --user-name (default: User).") String userName;

    @Override
    public Integer call() throws IOException {
        String text = promptText();
        List<String> stopList = new java.util.ArrayList<>(stops == null ? List.of() : stops);
        if (template == null) {
            if (system != null || botName != null || userName != null) {
                throw new IllegalArgumentException("--system, --name and --user lay out a chat turn: give --template too (world, metharme or a file)");
            }
        } else {
            ChatTemplate t = ChatTemplate.parse(template);
            String user = userName == null ? "User" : userName, bot = botName == null ? "Assistant" : botName;
            if (user.isBlank() || bot.isBlank()) throw new IllegalArgumentException("--name and --user must not be empty");
            text = t.conversationStart(system, user) + t.turnPrompt(text, user, bot);
            stopList.add(t.replyEnd(user));
        }
        Sampler sampler = new Sampler(temperature, topP, seed);
        if (maxTokens < 0) throw new IllegalArgumentException("--max-new-tokens must be >= 0, got " + maxTokens);
        // UTF-8 whatever the platform encoding; System.out is looked up now because tests swap it
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        try (EvalModelOptions.Loaded m = modelOptions.load()) {
            int[] tokens = m.tokenizer.encode(text);
            if (tokens.length == 0) throw new IllegalArgumentException("the prompt is empty: generation needs at least one token to start from");
            Prefill.Timed pre = Prefill.timed(m.model, tokens, m.initial, modelOptions.chunkLen, null);
            long t0 = System.nanoTime();
            Generator.Result r = Generator.generate(m.tokenizer, t -> m.model.step(t, m.initial), pre.logits(), sampler, maxTokens,
                    stopList, piece -> {
                        out.print(piece);
                        out.flush();
                    });
            double genSecs = (System.nanoTime() - t0) / 1e9;
            if (System.console() != null && !r.text().endsWith("\n")) out.println();   // keep the shell prompt on its own line
            out.flush();
            System.err.printf("prefill %,d tokens at %,.0f tokens/s; generated %d tokens at %.1f tokens/s; stopped: %s%n", tokens.length,
                    pre.tokensPerSecond(tokens.length), r.tokens().length, r.tokens().length / Math.max(genSecs, 1e-9),
                    r.reason().name().toLowerCase().replace('_', ' '));
        }
        return 0;
    }

    private String promptText() throws IOException {
        if ((prompt == null) == (promptFile == null)) throw new IllegalArgumentException("give exactly one of --prompt or --prompt-file");
        if (prompt != null) return prompt;
        try {
            return Files.readString(promptFile, StandardCharsets.UTF_8);
        } catch (NoSuchFileException e) {
            throw new IllegalArgumentException("prompt file not found: " + promptFile);
        } catch (java.nio.charset.MalformedInputException e) {
            throw new IllegalArgumentException(promptFile + " is not valid UTF-8 text");
        }
    }
}
