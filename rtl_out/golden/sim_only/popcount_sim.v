// hwgen: simulation variant of the popcount modules of hwgen_top.v (same ports);
// each is proven equal to its adder tree by hwgen.sim.equiv.
/* verilator lint_off DECLFILENAME */

module hwgen_popcount_4(a, clk, rst, y, en);
  input [3:0] a;
  input clk;
  input rst;
  input en;
  /* verilator lint_off PROCASSINIT */   // as Amaranth's: reset value = power-on
  output reg [2:0] y = 3'd0;
  /* verilator lint_on PROCASSINIT */
  function [2:0] count(input [3:0] v);
    /* verilator lint_off UNUSEDSIGNAL */
    reg [31:0] n;
    /* verilator lint_on UNUSEDSIGNAL */
    begin n = $countones(v); count = n[2:0]; end
  endfunction
  always @(posedge clk)
    if (rst) y <= 3'd0;
    else if (en) y <= count(a);
endmodule

module hwgen_popcount_9(a, clk, rst, y, en);
  input [8:0] a;
  input clk;
  input rst;
  input en;
  /* verilator lint_off PROCASSINIT */   // as Amaranth's: reset value = power-on
  output reg [3:0] y = 4'd0;
  /* verilator lint_on PROCASSINIT */
  function [3:0] count(input [8:0] v);
    /* verilator lint_off UNUSEDSIGNAL */
    reg [31:0] n;
    /* verilator lint_on UNUSEDSIGNAL */
    begin n = $countones(v); count = n[3:0]; end
  endfunction
  always @(posedge clk)
    if (rst) y <= 4'd0;
    else if (en) y <= count(a);
endmodule

module hwgen_popcount_11(a, clk, rst, y, en);
  input [10:0] a;
  input clk;
  input rst;
  input en;
  /* verilator lint_off PROCASSINIT */   // as Amaranth's: reset value = power-on
  output reg [3:0] y = 4'd0;
  /* verilator lint_on PROCASSINIT */
  function [3:0] count(input [10:0] v);
    /* verilator lint_off UNUSEDSIGNAL */
    reg [31:0] n;
    /* verilator lint_on UNUSEDSIGNAL */
    begin n = $countones(v); count = n[3:0]; end
  endfunction
  always @(posedge clk)
    if (rst) y <= 4'd0;
    else if (en) y <= count(a);
endmodule

module hwgen_popcount_16(a, clk, rst, y, en);
  input [15:0] a;
  input clk;
  input rst;
  input en;
  /* verilator lint_off PROCASSINIT */   // as Amaranth's: reset value = power-on
  output reg [4:0] y = 5'd0;
  /* verilator lint_on PROCASSINIT */
  function [4:0] count(input [15:0] v);
    /* verilator lint_off UNUSEDSIGNAL */
    reg [31:0] n;
    /* verilator lint_on UNUSEDSIGNAL */
    begin n = $countones(v); count = n[4:0]; end
  endfunction
  always @(posedge clk)
    if (rst) y <= 5'd0;
    else if (en) y <= count(a);
endmodule
