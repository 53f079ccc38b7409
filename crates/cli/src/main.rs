//! `phalanx`: one binary for the dev network, nodes and every client command.
//! Each subcommand lives in its own module; this file only parses and
//! dispatches.

mod account;
mod agent;
mod agent_call;
mod agent_chain;
mod attest;
mod bench;
mod bench_agent;
mod bench_gateway;
mod bench_keys;
mod bench_state;
mod bench_sync;
mod bench_worker;
mod chain;
mod client;
mod cluster;
mod deposit;
mod dev;
mod keys;
mod light;
mod logging;
mod mining;
mod node;
mod output;
mod pool;
mod testnet;
mod vault;
mod verify;
mod worker;

use clap::{Parser, Subcommand};

/// Confidential compute network for AI agents.
#[derive(Debug, Parser)]
#[command(name = "phalanx", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options every client command takes.
#[derive(Debug, Clone, clap::Args)]
struct ClientArgs {
    /// Node RPC endpoint.
    #[arg(long, global = true, env = "PHALANX_RPC", default_value = "http://127.0.0.1:9944")]
    rpc: String,
    /// Print machine-readable JSON (amounts as integer planck).
    #[arg(long, global = true)]
    json: bool,
    /// Take values as the node reports them, without checking certificates
    /// and state proofs (the output says so). By default every value read is
    /// verified by the light client.
    #[arg(long, global = true)]
    trust_node: bool,
    /// The chain to trust (its 0x chain id). By default the chain the node
    /// serves on first contact, remembered in the light-client cache.
    #[arg(long, global = true, env = "PHALANX_CHAIN_ID")]
    chain_id: Option<phalanx_primitives::Hash>,
    /// Where the light client keeps the validator set it trusts, one file
    /// per chain [default: ~/.phalanx/light].
    #[arg(long, global = true, env = "PHALANX_LIGHT_CACHE")]
    light_cache: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a whole local network in this process (data persists across restarts).
    Dev(dev::DevArgs),
    /// Run one validator of a multi-node network from its config file.
    Node(node::NodeArgs),
    /// A multi-node network on this machine, every role its own process: init, up, down.
    Testnet {
        #[command(subcommand)]
        command: testnet::TestnetCommand,
    },
    /// Inspect the chain.
    Chain {
        #[command(subcommand)]
        command: chain::ChainCommand,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Develop agents locally (`agent dev`) and manage them on chain.
    Agent {
        #[command(subcommand)]
        command: agent::AgentCommand,
    },
    /// Remote attestation evidence.
    Attest {
        #[command(subcommand)]
        command: attest::AttestCommand,
    },
    /// Measure performance end to end.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Run a worker (the TEE runtime) against a node, or list registered workers.
    Worker(worker::WorkerArgs),
    /// Gatekeepers, master-key epochs and rotations.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Clusters of workers (governance).
    Cluster {
        #[command(subcommand)]
        command: cluster::ClusterCommand,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Stake pools: create, contribute, withdraw, info, list.
    Pool {
        #[command(subcommand)]
        command: pool::PoolCommand,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Deposits for paid agent calls: add, withdraw, balance.
    Deposit {
        #[command(subcommand)]
        command: deposit::DepositCommand,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Vaults: stake delegated into pools by the vault's owner.
    Vault {
        #[command(subcommand)]
        command: vault::VaultCommand,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Mining: start and stop a pool's workers, and the status.
    Mining {
        #[command(subcommand)]
        command: mining::MiningCommand,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Check an agent response's receipt against the chain.
    Verify(verify::VerifyArgs),
    /// Accounts and PHA transfers.
    Account {
        #[command(subcommand)]
        command: account::AccountCommand,
        #[command(flatten)]
        client: ClientArgs,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Dev(args) => dev::run(args),
        Command::Node(args) => node::run(args),
        Command::Testnet { command } => runtime.block_on(testnet::run(command)),
        Command::Chain { command, client } => runtime.block_on(chain::run(command, &client)),
        Command::Account { command, client } => runtime.block_on(account::run(command, &client)),
        Command::Bench { command, client } => runtime.block_on(bench::run(command, &client)),
        Command::Agent { command } => runtime.block_on(agent::run(command)),
        Command::Attest { command } => attest::run(command),
        Command::Worker(args) => runtime.block_on(worker::run(args)),
        Command::Keys { command, client } => runtime.block_on(keys::run(command, &client)),
        Command::Verify(args) => runtime.block_on(verify::run(args)),
        Command::Cluster { command, client } => runtime.block_on(cluster::run(command, &client)),
        Command::Pool { command, client } => runtime.block_on(pool::run(command, &client)),
        Command::Mining { command, client } => runtime.block_on(mining::run(command, &client)),
        Command::Vault { command, client } => runtime.block_on(vault::run(command, &client)),
        Command::Deposit { command, client } => runtime.block_on(deposit::run(command, &client)),
    }
}
