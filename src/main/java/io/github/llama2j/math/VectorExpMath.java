package io.github.llama2j.math;

/**
 * The C library's functions ({@link CLibraryMath}), with {@link #expShifted} and {@link #swiglu} computed by
 * {@link VectorExpf}: the same values, bit for bit. Made once, if the C library links and the self-check agrees.
 */
final class VectorExpMath implements FloatMath {
    /** Random inputs of the startup self-check (with the sweep's hard inputs): a few ms before C2 compiles it. */
    private static final int SELF_CHECK_INPUTS = 2048;
    static final VectorExpMath INSTANCE = CLibraryMath.instance()
            .filter(libm -> VectorExpf.selfCheck(libm, SELF_CHECK_INPUTS, 0x5eed_e4bfL))
            .map(VectorExpMath::new).orElse(null);

    private final CLibraryMath libm;

    private VectorExpMath(CLibraryMath libm) {
        this.libm = libm;
    }

    @Override
    public float exp(float x) {
        return libm.exp(x);
    }

    @Override
    public float sin(float x) {
        return libm.sin(x);
    }

    @Override
    public float cos(float x) {
        return libm.cos(x);
    }

    @Override
    public float pow(float x, float y) {
        return libm.pow(x, y);
    }

    @Override
    public void expShifted(float[] x, int off, int n, float shift) {
        VectorExpf.expShifted(x, off, n, shift, libm);
    }

    @Override
    public void swiglu(float[] hb, float[] hb2, int from, int to) {
        VectorExpf.swiglu(hb, hb2, from, to, libm);
    }

    @Override
    public String name() {
        return libm.name() + " (exp vectorized)";
    }
}
