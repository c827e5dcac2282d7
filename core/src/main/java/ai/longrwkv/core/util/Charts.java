package ai.longrwkv.core.util;

import org.jfree.chart.ChartFactory;
import org.jfree.chart.ChartUtils;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.annotations.XYTextAnnotation;
import org.jfree.chart.axis.LogarithmicAxis;
import org.jfree.chart.axis.NumberAxis;
import org.jfree.chart.axis.NumberTickUnit;
import org.jfree.chart.axis.SymbolAxis;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.chart.plot.XYPlot;
import org.jfree.chart.renderer.PaintScale;
import org.jfree.chart.renderer.xy.XYBlockRenderer;
import org.jfree.chart.title.PaintScaleLegend;
import org.jfree.chart.ui.RectangleEdge;
import org.jfree.data.xy.DefaultXYZDataset;
import org.jfree.data.xy.XYSeries;
import org.jfree.data.xy.XYSeriesCollection;

import java.awt.Color;
import java.awt.Font;
import java.awt.Paint;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Map;

/** PNG line charts and heatmaps (JFreeChart, headless), written atomically. */
public final class Charts {
    private Charts() { }

    static {
        System.setProperty("java.awt.headless", "true");
    }

    /** One line per entry of {@code series} (name -> points {x, y}). */
    public static void lines(Path png, String title, String xLabel, String yLabel, Map<String, List<double[]>> series, boolean logX) {
        XYSeriesCollection data = new XYSeriesCollection();
        series.forEach((name, points) -> {
            XYSeries s = new XYSeries(name);
            for (double[] p : points) if (Double.isFinite(p[1])) s.add(p[0], p[1]);
            data.addSeries(s);
        });
        JFreeChart chart = ChartFactory.createXYLineChart(title, xLabel, yLabel, data, PlotOrientation.VERTICAL, series.size() > 1, false, false);
        if (logX) {
            XYPlot plot = chart.getXYPlot();
            LogarithmicAxis axis = new LogarithmicAxis(xLabel);
            axis.setAllowNegativesFlag(false);
            plot.setDomainAxis(axis);
        }
        write(png, chart, 900, 500);
    }

    /**
     * A grid of coloured cells, as the needle-in-a-haystack heatmaps: cell (x, y) gets values[y][x] on a red (min) to
     * yellow to green (max) scale, with the value printed in it; NaN cells stay grey. The axes are categories
     * (xTicks left to right, yTicks bottom to top), e.g. context lengths and needle depths.
     */
    public static void heatmap(Path png, String title, String xLabel, String yLabel, String[] xTicks, String[] yTicks,
                               double[][] values, double min, double max) {
        if (values.length != yTicks.length) throw new IllegalArgumentException(values.length + " rows for " + yTicks.length + " y ticks");
        int n = xTicks.length * yTicks.length;
        double[] xs = new double[n], ys = new double[n], zs = new double[n];
        XYPlot plot = new XYPlot();
        int i = 0;
        for (int y = 0; y < yTicks.length; y++) {
            if (values[y].length != xTicks.length) throw new IllegalArgumentException("row " + y + " has " + values[y].length + " values for " + xTicks.length + " x ticks");
            for (int x = 0; x < xTicks.length; x++, i++) {
                xs[i] = x;
                ys[i] = y;
                zs[i] = values[y][x];
                if (Double.isFinite(values[y][x])) {
                    XYTextAnnotation label = new XYTextAnnotation(String.format(java.util.Locale.ROOT, "%.2f", values[y][x]), x, y);
                    label.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, cellFontSize(xTicks.length, yTicks.length)));
                    plot.addAnnotation(label);
                }
            }
        }
        DefaultXYZDataset data = new DefaultXYZDataset();
        data.addSeries("values", new double[][]{xs, ys, zs});
        RedYellowGreen scale = new RedYellowGreen(min, max);
        XYBlockRenderer renderer = new XYBlockRenderer();
        renderer.setPaintScale(scale);
        plot.setDataset(data);
        plot.setRenderer(renderer);
        SymbolAxis xAxis = new SymbolAxis(xLabel, xTicks);
        xAxis.setGridBandsVisible(false);
        xAxis.setRange(-0.5, xTicks.length - 0.5);
        SymbolAxis yAxis = new SymbolAxis(yLabel, yTicks);
        yAxis.setGridBandsVisible(false);
        yAxis.setRange(-0.5, yTicks.length - 0.5);
        plot.setDomainAxis(xAxis);
        plot.setRangeAxis(yAxis);
        plot.setDomainGridlinesVisible(false);
        plot.setRangeGridlinesVisible(false);
        plot.setBackgroundPaint(Color.LIGHT_GRAY);
        JFreeChart chart = new JFreeChart(title, JFreeChart.DEFAULT_TITLE_FONT, plot, false);
        NumberAxis legendAxis = new NumberAxis();
        legendAxis.setRange(min, max);
        if (max > min) legendAxis.setTickUnit(new NumberTickUnit((max - min) / 4));
        PaintScaleLegend legend = new PaintScaleLegend(scale, legendAxis);
        legend.setPosition(RectangleEdge.RIGHT);
        legend.setMargin(4, 4, 40, 4);
        legend.setStripWidth(15);
        chart.addSubtitle(legend);
        chart.setBackgroundPaint(Color.WHITE);
        write(png, chart, Math.max(600, 120 + 70 * xTicks.length), Math.max(400, 140 + 32 * yTicks.length));
    }

    private static int cellFontSize(int columns, int rows) {
        return columns > 16 || rows > 24 ? 8 : 11;
    }

    /** min = red, middle = yellow, max = green; NaN and values outside the range clamp (NaN: grey). */
    private record RedYellowGreen(double min, double max) implements PaintScale {
        @Override public double getLowerBound() { return min; }
        @Override public double getUpperBound() { return max; }

        @Override
        public Paint getPaint(double value) {
            if (Double.isNaN(value)) return Color.GRAY;
            double f = max > min ? Math.max(0, Math.min(1, (value - min) / (max - min))) : 1;
            // red (215, 48, 39) -> yellow (254, 224, 139) -> green (26, 152, 80)
            return f < 0.5 ? mix(new Color(215, 48, 39), new Color(254, 224, 139), f * 2)
                    : mix(new Color(254, 224, 139), new Color(26, 152, 80), (f - 0.5) * 2);
        }

        private static Color mix(Color a, Color b, double t) {
            return new Color((int) Math.round(a.getRed() + (b.getRed() - a.getRed()) * t),
                    (int) Math.round(a.getGreen() + (b.getGreen() - a.getGreen()) * t),
                    (int) Math.round(a.getBlue() + (b.getBlue() - a.getBlue()) * t));
        }
    }

    static void write(Path png, JFreeChart chart, int width, int height) {
        try {
            Path tmp = png.resolveSibling(png.getFileName() + ".tmp");
            ChartUtils.saveChartAsPNG(tmp.toFile(), chart, width, height);
            Files.move(tmp, png, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException("writing chart " + png + ": " + e.getMessage(), e);
        }
    }
}
