// hwgen: simulation variant of the popcount modules of hwgen_top.v (same ports);
// each is proven equal to its adder tree by hwgen.sim.equiv.
/* verilator lint_off DECLFILENAME */

module hwgen_popcount_4(a, y);
  input [3:0] a;
  output [2:0] y;
  /* verilator lint_off UNUSEDSIGNAL */
  wire [31:0] n = $countones(a);
  /* verilator lint_on UNUSEDSIGNAL */
  assign y = n[2:0];
endmodule

module hwgen_popcount_9(a, y);
  input [8:0] a;
  output [3:0] y;
  /* verilator lint_off UNUSEDSIGNAL */
  wire [31:0] n = $countones(a);
  /* verilator lint_on UNUSEDSIGNAL */
  assign y = n[3:0];
endmodule

module hwgen_popcount_11(a, y);
  input [10:0] a;
  output [3:0] y;
  /* verilator lint_off UNUSEDSIGNAL */
  wire [31:0] n = $countones(a);
  /* verilator lint_on UNUSEDSIGNAL */
  assign y = n[3:0];
endmodule

module hwgen_popcount_16(a, y);
  input [15:0] a;
  output [4:0] y;
  /* verilator lint_off UNUSEDSIGNAL */
  wire [31:0] n = $countones(a);
  /* verilator lint_on UNUSEDSIGNAL */
  assign y = n[4:0];
endmodule
